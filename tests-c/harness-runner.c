/* The harness's runner and helpers (see harness.h). */
#define _XOPEN_SOURCE 700

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <virnodesuspend.h>

/* The running case's fake root (set in the child before the case runs). */
static char case_root[256];

/* Prints where and why the running case failed, and ends its process. */
__attribute__((format(printf, 3, 4))) static void fail(const char *file, int line, const char *fmt, ...)
{
    va_list args;
    printf("# %s:%d: ", file, line);
    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);
    printf("\n");
    fflush(stdout);
    exit(1);
}

/* The exit status of a case that skipped itself (as automake's tests do). */
#define SKIPPED 77

void harness_need_root(const char *what)
{
    if (geteuid() == 0)
        return;
    printf("# not root: %s needs root\n", what);
    fflush(stdout);
    exit(SKIPPED);
}

void harness_check(bool ok, const char *what, const char *file, int line)
{
    if (!ok)
        fail(file, line, "check failed: %s", what);
}

void harness_check_str(const char *actual, const char *expected, const char *file, int line)
{
    if (actual == NULL || strcmp(actual, expected) != 0)
        fail(file, line, "got \"%s\", expected \"%s\"", actual ? actual : "(NULL)", expected);
}

void harness_check_error(int code, int domain, const char *message, const char *file, int line)
{
    const virNodeSuspendError *error = virNodeSuspendGetLastError();
    if (error == NULL)
        fail(file, line, "no error, expected \"%s\"", message);
    harness_check(error->code == code, "error->code == code", file, line);
    harness_check(error->domain == domain, "error->domain == domain", file, line);
    harness_check(error->level == 2 /* VIR_ERR_ERROR */, "error->level == VIR_ERR_ERROR", file, line);
    harness_check_str(error->message, message, file, line);
    harness_check(virNodeSuspendGetLastErrorCode() == code, "virNodeSuspendGetLastErrorCode() == code", file, line);
    harness_check(virNodeSuspendGetLastErrorMessage() == error->message,
                  "virNodeSuspendGetLastErrorMessage() is the error's message", file, line);
}

static void path_of(char *path, const char *relative)
{
    snprintf(path, PATH_MAX, "%s/%s", case_root, relative);
}

const char *root_path(const char *relative)
{
    static char path[PATH_MAX];
    path_of(path, relative);
    return path;
}

/* Makes the directories above `path` (a path in the case's root). */
static void make_parents(char *path)
{
    for (char *slash = strchr(path + strlen(case_root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            fail(__FILE__, __LINE__, "mkdir %s: %s", path, strerror(errno));
        *slash = '/';
    }
}

void root_write(const char *relative, const char *content)
{
    char path[PATH_MAX];
    path_of(path, relative);
    make_parents(path);
    FILE *file = fopen(path, "w");
    if (file == NULL || fputs(content, file) < 0 || fclose(file) != 0)
        fail(__FILE__, __LINE__, "write %s: %s", path, strerror(errno));
}

const char *root_read(const char *relative)
{
    static char content[4096];
    char path[PATH_MAX];
    path_of(path, relative);
    content[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, content, sizeof(content) - 1);
        content[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    return content;
}

void root_remove(const char *relative)
{
    char path[PATH_MAX];
    path_of(path, relative);
    if (unlink(path) < 0)
        fail(__FILE__, __LINE__, "unlink %s: %s", path, strerror(errno));
}

/* A block device node major:minor at `relative` (it is never opened; mknod needs root). */
static void root_block_device(const char *relative, unsigned major, unsigned minor)
{
    char path[PATH_MAX];
    harness_need_root("mknod of a block device");
    path_of(path, relative);
    make_parents(path);
    if ((unlink(path) < 0 && errno != ENOENT) || mknod(path, S_IFBLK | 0600, makedev(major, minor)) < 0)
        fail(__FILE__, __LINE__, "mknod %s: %s (the harness runs as root)", path, strerror(errno));
}

/* Reads the file at `path` into `content` (at most `size` - 1 bytes), or fails the case. */
static void read_whole(const char *path, char *content, size_t size)
{
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, content, size - 1);
    if (n < 0 || (size_t)n == size - 1)
        fail(__FILE__, __LINE__, "read %s: %s", path, n < 0 ? strerror(errno) : "too long");
    content[n] = '\0';
    close(fd);
}

const char *fake_host_read(const char *relative)
{
    static char content[4096];
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/root/%s", HARNESS_FAKE_HOST, relative);
    read_whole(path, content, sizeof(content));
    return content;
}

const char *fake_host_alarm(unsigned long long duration)
{
    static char alarm[32];
    long long now = strtoll(fake_host_read("sys/class/rtc/rtc0/since_epoch"), NULL, 10);
    snprintf(alarm, sizeof(alarm), "%lld", now + (long long)duration + 1);
    return alarm;
}

/* nftw's callback for the fake host's files: each is written to the same place below the
 * case's root. */
static int copy_fake_host_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    static const char prefix[] = HARNESS_FAKE_HOST "/root/";
    char content[4096];
    (void)st;
    (void)ftw;
    if (type == FTW_F) {
        read_whole(path, content, sizeof(content));
        root_write(path + strlen(prefix), content);
    }
    return 0;
}

/* The fake host's files, and its swap area's block devices when `swap`; without them,
 * /proc/swaps keeps only its header line. */
static void copy_fake_host(bool swap)
{
    char devices[4096], relative[256], swaps[4096];
    unsigned major, minor;
    int used;
    if (nftw(HARNESS_FAKE_HOST "/root", copy_fake_host_file, 16, FTW_PHYS) != 0)
        fail(__FILE__, __LINE__, "copy %s/root: %s", HARNESS_FAKE_HOST, strerror(errno));
    if (!swap) {
        snprintf(swaps, sizeof(swaps), "%s", fake_host_read("proc/swaps"));
        swaps[strcspn(swaps, "\n") + 1] = '\0';
        root_write("proc/swaps", swaps);
        return;
    }
    read_whole(HARNESS_FAKE_HOST "/block-devices", devices, sizeof(devices));
    for (const char *line = devices; sscanf(line, "%255s %u %u\n%n", relative, &major, &minor, &used) == 3;
         line += used)
        root_block_device(relative, major, minor);
}

void root_host(void)
{
    copy_fake_host(true);
}

void root_host_without_swap(void)
{
    copy_fake_host(false);
}

void use_fake_root(const char *delay)
{
    char environment[4096], *rest;
    read_whole(HARNESS_FAKE_HOST "/environment", environment, sizeof(environment));
    for (char *line = strtok_r(environment, "\n", &rest); line; line = strtok_r(NULL, "\n", &rest)) {
        char *equals = strchr(line, '=');
        if (equals == NULL)
            fail(__FILE__, __LINE__, "%s/environment: no NAME=VALUE: %s", HARNESS_FAKE_HOST, line);
        *equals = '\0';
        if (setenv(line, equals + 1, 1) < 0)
            fail(__FILE__, __LINE__, "setenv %s: %s", line, strerror(errno));
    }
    if (setenv("VIRNODESUSPEND_ROOT", case_root, 1) < 0 || setenv("VIRNODESUSPEND_DELAY", delay, 1) < 0)
        fail(__FILE__, __LINE__, "setenv: %s", strerror(errno));
}

struct racer_start {
    pthread_barrier_t *start;
    void (*run)(void *racer);
    void *racer;
};

static void *let_go(void *arg)
{
    struct racer_start *racer = arg;
    pthread_barrier_wait(racer->start);
    racer->run(racer->racer);
    return NULL;
}

void harness_race(void (*run)(void *racer), void *racers, size_t size, size_t count)
{
    pthread_barrier_t start;
    pthread_t threads[HARNESS_MAX_RACERS];
    struct racer_start starts[HARNESS_MAX_RACERS];
    CHECK(count <= HARNESS_MAX_RACERS);
    CHECK(pthread_barrier_init(&start, NULL, (unsigned)count) == 0);
    for (size_t i = 0; i < count; i++) {
        starts[i] = (struct racer_start){&start, run, (char *)racers + i * size};
        CHECK(pthread_create(&threads[i], NULL, let_go, &starts[i]) == 0);
    }
    for (size_t i = 0; i < count; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    pthread_barrier_destroy(&start);
}

void harness_wait_for(bool (*done)(void), const char *what, const char *file, int line)
{
    const struct timespec pause = {0, 5 * 1000 * 1000};
    for (int i = 0; i < 30 * 200; i++) {
        if (done())
            return;
        nanosleep(&pause, NULL);
    }
    fail(file, line, "waited 30 s for %s", what);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

int harness_main(const struct harness_case *cases, size_t count)
{
    const char *tmp = getenv("TMPDIR");
    int failed = 0;

    printf("1..%zu\n", count);
    fflush(stdout);
    for (size_t i = 0; i < count; i++) {
        snprintf(case_root, sizeof(case_root), "%s/virnodesuspend-harness-XXXXXX", tmp ? tmp : "/tmp");
        if (mkdtemp(case_root) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        pid_t child = fork();
        if (child == 0) {
            cases[i].run();
            exit(0);
        }
        int status;
        bool waited = child > 0 && waitpid(child, &status, 0) == child;
        bool skipped = waited && WIFEXITED(status) && WEXITSTATUS(status) == SKIPPED;
        bool ok = skipped || (waited && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (!waited)
            printf("# could not run the case: %s\n", strerror(errno));
        else if (WIFSIGNALED(status))
            printf("# killed by signal %d\n", WTERMSIG(status));
        printf("%s %zu - %s%s\n", ok ? "ok" : "not ok", i + 1, cases[i].name, skipped ? " # SKIP not root" : "");
        fflush(stdout);
        failed += !ok;
        nftw(case_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    return failed ? 1 : 0;
}
