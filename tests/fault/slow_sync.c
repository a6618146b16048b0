/*
 * A slow disk, for the real binary: an LD_PRELOAD shim that makes fsync,
 * fdatasync and syncfs take as long as a control file says.
 *
 *   QUORRA_SLOW_SYNC_FILE=/path/to/ms LD_PRELOAD=libslowsync.so quorra node ...
 *
 * The file holds a number of milliseconds; it is read at every call, so a
 * test can make a running node's disk slow, and fast again, by rewriting
 * it. No file, or anything that is not a number: no delay. The sync itself
 * is then done for real, after the delay, so durability is unchanged; the
 * process only sees each flush take that much longer, as on a disk whose
 * queue is full or which is retrying a failing sector.
 *
 * Built with the system C compiler by the end-to-end tests
 * (tests/src/lib.rs: slow_sync_shim) and by quorra-chaos, which preloads it
 * into every node (simulations/src/chaos/cluster.rs) for its slow-disk
 * fault.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void delay(void) {
    const char *path = getenv("QUORRA_SLOW_SYNC_FILE");
    if (path == NULL) {
        return;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    long ms = 0;
    if (fscanf(f, "%ld", &ms) != 1) {
        ms = 0;
    }
    fclose(f);
    if (ms <= 0) {
        return;
    }
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) == -1 && errno == EINTR) {
    }
}

/* Each wrapper: the delay, then the real call, found once. */
#define SLOW(name)                                                  \
    int name(int fd) {                                              \
        static int (*real)(int);                                    \
        if (real == NULL) {                                         \
            real = (int (*)(int))dlsym(RTLD_NEXT, #name);           \
        }                                                           \
        delay();                                                    \
        return real(fd);                                            \
    }

SLOW(fsync)
SLOW(fdatasync)
SLOW(syncfs)
