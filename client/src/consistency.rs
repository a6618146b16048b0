//! Per-request consistency: how many replicas must answer.
//!
//! Each request names how many of the key's N replicas must answer before
//! the coordinator replies: `R` for reads, `W` for writes, as a [`Level`]
//! (`one`, `two`, `quorum` = ⌊N/2⌋+1, `all`, or an exact count). `pr`/`pw`
//! additionally require that many answers from the key's *primary* replicas
//! rather than fallbacks of a sloppy quorum, for callers who want a write on
//! its real owners before they hear "ok". The default is `quorum` for both,
//! so with N = 3 a read and a write always overlap in one replica (R + W > N).
//!
//! A level is resolved against the replicas a partition actually has (fewer
//! than N while the cluster is smaller than N); asking for more than exist
//! is an error, not a silent downgrade.
//!
//! Text form, as the CLI and the Redis gateway accept it: a comma-separated
//! list of `one|two|quorum|all` (both R and W), `r=L`, `w=L`, `pr=K`, `pw=K`,
//! where `L` is a level name or a number: `quorum`, `r=1,w=all`,
//! `r=2,w=2,pw=1`.

use serde::{Deserialize, Serialize};

/// How many replicas must answer one side (read or write) of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Level {
    /// One replica.
    One,
    /// Two replicas.
    Two,
    /// A majority: ⌊N/2⌋ + 1.
    Quorum,
    /// Every replica.
    All,
    /// Exactly this many replicas (at least 1; counts 1 and 2 parse as
    /// [`Level::One`] and [`Level::Two`]).
    Exactly(u8),
}

impl Level {
    /// The number of answers this level needs when `n` replicas exist.
    pub fn resolve(self, n: usize) -> Result<usize, ConsistencyError> {
        let needed = match self {
            Level::One => 1,
            Level::Two => 2,
            Level::Quorum => n / 2 + 1,
            Level::All => n,
            Level::Exactly(k) => usize::from(k),
        };
        if needed == 0 || needed > n {
            return Err(ConsistencyError::MoreThanReplicas {
                needed,
                replicas: n,
            });
        }
        Ok(needed)
    }

    fn parse(text: &str) -> Result<Self, ConsistencyError> {
        Ok(match text {
            "one" => Level::One,
            "two" => Level::Two,
            "quorum" => Level::Quorum,
            "all" => Level::All,
            number => match number.parse::<u8>() {
                Ok(0) | Err(_) => {
                    return Err(ConsistencyError::Syntax {
                        input: text.to_string(),
                        reason: "expected one, two, quorum, all or a count from 1 to 255".into(),
                    });
                }
                Ok(1) => Level::One,
                Ok(2) => Level::Two,
                Ok(k) => Level::Exactly(k),
            },
        })
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Level::One => f.write_str("one"),
            Level::Two => f.write_str("two"),
            Level::Quorum => f.write_str("quorum"),
            Level::All => f.write_str("all"),
            Level::Exactly(k) => write!(f, "{k}"),
        }
    }
}

/// The consistency of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Consistency {
    /// R: answers a read waits for.
    pub read: Level,
    /// W: durable acknowledgements a write waits for.
    pub write: Level,
    /// PR: of the read answers, how many must come from primaries.
    pub primary_reads: u8,
    /// PW: of the write acknowledgements, how many must come from primaries.
    pub primary_writes: u8,
}

impl Consistency {
    /// R = W = 1.
    pub const ONE: Self = Self::both(Level::One);
    /// R = W = 2.
    pub const TWO: Self = Self::both(Level::Two);
    /// R = W = ⌊N/2⌋ + 1 (the default).
    pub const QUORUM: Self = Self::both(Level::Quorum);
    /// R = W = N.
    pub const ALL: Self = Self::both(Level::All);

    /// The same level for reads and writes, no primary requirement.
    pub const fn both(level: Level) -> Self {
        Self {
            read: level,
            write: level,
            primary_reads: 0,
            primary_writes: 0,
        }
    }

    /// Answers a read must gather from `n` replicas, and how many of them
    /// from primaries.
    pub fn read_quorum(&self, n: usize) -> Result<Quorum, ConsistencyError> {
        Self::quorum(self.read, self.primary_reads, n)
    }

    /// Acknowledgements a write must gather from `n` replicas, and how many
    /// of them from primaries.
    pub fn write_quorum(&self, n: usize) -> Result<Quorum, ConsistencyError> {
        Self::quorum(self.write, self.primary_writes, n)
    }

    fn quorum(level: Level, primaries: u8, n: usize) -> Result<Quorum, ConsistencyError> {
        let total = level.resolve(n)?;
        let primaries = usize::from(primaries);
        if primaries > n {
            return Err(ConsistencyError::MoreThanReplicas {
                needed: primaries,
                replicas: n,
            });
        }
        Ok(Quorum {
            total: total.max(primaries),
            primaries,
        })
    }
}

impl Default for Consistency {
    fn default() -> Self {
        Self::QUORUM
    }
}

/// A resolved requirement: `total` answers, of which `primaries` from primaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quorum {
    /// Answers needed in all.
    pub total: usize,
    /// Of those, answers needed from primary replicas.
    pub primaries: usize,
}

impl std::fmt::Display for Consistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.read == self.write {
            write!(f, "{}", self.read)?;
        } else {
            write!(f, "r={},w={}", self.read, self.write)?;
        }
        if self.primary_reads > 0 {
            write!(f, ",pr={}", self.primary_reads)?;
        }
        if self.primary_writes > 0 {
            write!(f, ",pw={}", self.primary_writes)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Consistency {
    type Err = ConsistencyError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let mut c = Consistency::default();
        let syntax = |reason: &str| ConsistencyError::Syntax {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(syntax("empty consistency"));
        }
        for item in trimmed.split(',').map(str::trim) {
            let lowered = item.to_ascii_lowercase();
            match lowered.split_once('=') {
                None => c = Consistency::both(Level::parse(&lowered)?),
                Some(("r", level)) => c.read = Level::parse(level)?,
                Some(("w", level)) => c.write = Level::parse(level)?,
                Some(("pr", count)) => {
                    c.primary_reads = count
                        .parse()
                        .map_err(|_| syntax("pr takes a count from 0 to 255"))?
                }
                Some(("pw", count)) => {
                    c.primary_writes = count
                        .parse()
                        .map_err(|_| syntax("pw takes a count from 0 to 255"))?
                }
                Some(_) => return Err(syntax("expected r=, w=, pr= or pw=")),
            }
        }
        Ok(c)
    }
}

/// Why a consistency level is unusable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ConsistencyError {
    /// The text does not parse.
    #[error("bad consistency {input:?}: {reason}")]
    Syntax {
        /// What was given.
        input: String,
        /// What was expected.
        reason: String,
    },
    /// The level asks for more answers than there are replicas.
    #[error("consistency needs {needed} answers but the key has {replicas} replicas")]
    MoreThanReplicas {
        /// Answers asked for.
        needed: usize,
        /// Replicas that exist.
        replicas: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_resolve_against_n() {
        assert_eq!(Level::Quorum.resolve(3), Ok(2));
        assert_eq!(Level::Quorum.resolve(5), Ok(3));
        assert_eq!(Level::Quorum.resolve(1), Ok(1));
        assert_eq!(Level::All.resolve(3), Ok(3));
        assert_eq!(Level::Exactly(2).resolve(3), Ok(2));
        assert!(Level::Two.resolve(1).is_err());
        assert!(Level::Exactly(4).resolve(3).is_err());
    }

    #[test]
    fn parses_and_prints() {
        for (text, expected) in [
            ("quorum", Consistency::QUORUM),
            ("ONE", Consistency::ONE),
            ("all", Consistency::ALL),
            (
                "r=1,w=all",
                Consistency {
                    read: Level::One,
                    write: Level::All,
                    ..Consistency::QUORUM
                },
            ),
            (
                "r=2, w=2, pw=1",
                Consistency {
                    read: Level::Two,
                    write: Level::Two,
                    primary_reads: 0,
                    primary_writes: 1,
                },
            ),
        ] {
            let parsed: Consistency = text.parse().unwrap();
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.to_string().parse::<Consistency>().unwrap(), parsed);
        }
    }

    #[test]
    fn rejects_garbage_with_a_clear_error() {
        for bad in ["", "most", "r=0", "r=", "x=1", "pw=-1", "r=300"] {
            let err = bad.parse::<Consistency>().unwrap_err();
            assert!(err.to_string().contains("bad consistency"), "{bad}: {err}");
        }
    }

    #[test]
    fn primary_requirement_raises_the_total() {
        let c: Consistency = "r=1,pr=2".parse().unwrap();
        assert_eq!(
            c.read_quorum(3).unwrap(),
            Quorum {
                total: 2,
                primaries: 2
            }
        );
        assert!(c.read_quorum(1).is_err());
    }
}
