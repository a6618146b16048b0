//! A strict reader of the Prometheus text format (version 0.0.4), for
//! asserting what `/metrics` serves: every line must be a `# HELP`, a
//! `# TYPE` or a sample of a family declared before it, with a valid name,
//! well-formed labels and a number; a family may be declared once. What
//! the format allows and this rejects, the exposition here never writes.

use std::collections::{BTreeMap, BTreeSet};

/// One sample: its name, labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name (a histogram's carry `_bucket`, `_sum`, `_count`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A whole scrape.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// Family name → type.
    pub types: BTreeMap<String, String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses `text`, or says which line is wrong and why.
    pub fn parse(text: &str) -> Result<Scrape, String> {
        let mut scrape = Scrape::default();
        let mut helped = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                check_name(name).map_err(|e| bad(&e))?;
                if !helped.insert(name.to_string()) {
                    return Err(bad("a second HELP for the family"));
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest
                    .split_once(' ')
                    .ok_or_else(|| bad("TYPE without a type"))?;
                check_name(name).map_err(|e| bad(&e))?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(bad("unknown type"));
                }
                if scrape.types.insert(name.into(), kind.into()).is_some() {
                    return Err(bad("a family declared twice"));
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let sample = sample(line).map_err(|e| bad(&e))?;
            if scrape.family_of(&sample.name).is_none() {
                return Err(bad("a sample of no declared family"));
            }
            scrape.samples.push(sample);
        }
        Ok(scrape)
    }

    /// The declared family a sample name belongs to.
    pub fn family_of(&self, sample: &str) -> Option<&str> {
        if let Some((name, _)) = self.types.get_key_value(sample) {
            return Some(name);
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix)
                && self.types.get(base).is_some_and(|t| t == "histogram")
            {
                return self.types.get_key_value(base).map(|(n, _)| n.as_str());
            }
        }
        None
    }

    /// The samples named `name` whose labels include every pair of `labels`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the values of [`Scrape::find`]'s samples.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).map(|s| s.value).sum()
    }

    /// The one sample's value, if exactly one matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self.find(name, labels).collect();
        (found.len() == 1).then(|| found[0].value)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn sample(line: &str) -> Result<Sample, String> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return Err("a sample without a value".into()),
    };
    check_name(name)?;
    let mut labels = BTreeMap::new();
    let rest = if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inner.strip_prefix('}') {
                break after;
            }
            let (key, after) = inner.split_once("=\"").ok_or("a label without =\"")?;
            let key = key.trim_start_matches(',');
            check_name(key)?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        _ => return Err("a bad escape in a label value".into()),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => return Err("an unterminated label value".into()),
                }
            };
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            inner = &after[end + 1..];
        }
    } else {
        rest
    };
    let value = rest.trim().split(' ').next().unwrap_or_default();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .map_err(|_| format!("value {v:?} is not a number"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_scrape_parses_and_a_broken_one_does_not() {
        let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"z\"} 3\n\
                    # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
        let s = Scrape::parse(good).unwrap();
        assert_eq!(s.value("a_total", &[("y", "q\"z")]), Some(3.0));
        assert_eq!(s.value("h_count", &[]), Some(2.0));
        assert!(Scrape::parse("undeclared 1\n").is_err());
        assert!(Scrape::parse("# TYPE a gauge\na{x=\"1} 1\n").is_err());
        assert!(Scrape::parse("# TYPE a gauge\na one\n").is_err());
        assert!(Scrape::parse("# TYPE a gauge\n# TYPE a gauge\n").is_err());
        assert!(Scrape::parse("# TYPE 1a gauge\n").is_err());
    }
}
