/*
 * The C test harness: each case runs in a child process of its own (the library reads its
 * configuration once per process), on a fake root made for it, and the results are
 * printed as TAP for meson.
 *
 * Nothing here reaches this machine's /sys, RTC, system bus or pm-utils: the library is
 * told to use the kernel backend on the case's fake root, with no bus and no PATH.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdbool.h>
#include <stddef.h>

struct harness_case {
    const char *name;
    void (*run)(void);
};

/* Runs every case, each in a child process; prints TAP; returns the exit status. */
int harness_main(const struct harness_case *cases, size_t count);

/* Fails the running case (its child process exits) unless the condition holds. */
#define CHECK(cond) harness_check((cond), #cond, __FILE__, __LINE__)
void harness_check(bool ok, const char *what, const char *file, int line);

/* Skips the running case (TAP "# SKIP") unless the harness runs as root, which the case
 * needs for `what`: a distribution's package build runs the harness as a user. */
void harness_need_root(const char *what);

/* CHECK for strings, showing both on failure. */
#define CHECK_STR(actual, expected) harness_check_str((actual), (expected), __FILE__, __LINE__)
void harness_check_str(const char *actual, const char *expected, const char *file, int line);

/* Checks this thread's last error of the library: its code, domain and full message, and
 * that its level is VIR_ERR_ERROR. */
#define CHECK_ERROR(code, domain, message) harness_check_error((code), (domain), (message), __FILE__, __LINE__)
void harness_check_error(int code, int domain, const char *message, const char *file, int line);

/* The running case's fake root: the path of a file below it (in a static buffer), writes
 * a file (making its directories), reads one (into a static buffer; "" when missing). */
const char *root_path(const char *relative);
void root_write(const char *relative, const char *content);
const char *root_read(const char *relative);
void root_remove(const char *relative);

/* The fake host, tests/fake-host/ (its README), copied to the case's root: mem, disk and
 * hybrid sleep, a swap area the kernel can resume from (a block device node: the case
 * needs root, else it is skipped) and a wake-capable RTC. Without its swap area the host
 * can suspend to RAM only, and the case runs as any user. */
void root_host(void);
void root_host_without_swap(void);

/* A file of the fake host as tests/fake-host/root/ has it (in a static buffer). */
const char *fake_host_read(const char *relative);

/* The alarm a request of `duration` seconds arms on the fake host, as the library writes
 * it (in a static buffer): its RTC's reading + duration + 1, the second it read being
 * perhaps almost over. */
const char *fake_host_alarm(unsigned long long duration);

/* Points the library at the case's root with the fake host's environment (no bus, no PATH,
 * the kernel backend only) and `delay` seconds before a suspend. The environment is read
 * at the library's first call, so this comes first in a case; a case that wants another
 * backend or PATH sets it after. */
void use_fake_root(const char *delay);

/* Runs `run` in a thread per racer, all let go at once, and joins them: `racers` is an
 * array of `count` (at most HARNESS_MAX_RACERS) items of `size` bytes, one for each. */
#define HARNESS_MAX_RACERS 32
void harness_race(void (*run)(void *racer), void *racers, size_t size, size_t count);

/* Waits up to 30 s for the predicate `done()` to hold. */
#define WAIT_FOR(done) harness_wait_for((done), #done, __FILE__, __LINE__)
void harness_wait_for(bool (*done)(void), const char *what, const char *file, int line);

#endif
