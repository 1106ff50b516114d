/*
 * The host's request across processes: one request per host whatever the number of
 * processes that load the library; another process's request refused, waited for, seen
 * (virNodeSuspendGetInfo) and cancelled (virNodeSuspendAbort); a request whose process
 * died settled by the next process's first call; an alarm someone else set left alone;
 * an unprivileged process that sees and waits for root's request; and fork() after a
 * request, while one is pending, and while the parent suspends (the parent then killed).
 *
 * Each case runs in a process of its own on a fake root (harness.h); the processes a case
 * starts are forked from it, and wait for each other on pipes, never for a fixed time. A
 * suspend is held where the case wants it with a FIFO as sys/power/state: the worker's
 * open(2) of it blocks until the case opens it for reading. Every child has an alarm() as
 * a guard against a hang.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE /* setgroups(2) */

#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <virnodesuspend.h>

#define IN_PROGRESS "Requested operation is not valid: Suspend operation already in progress"
#define NO_REQUEST "Requested operation is not valid: no suspend request was made"
#define NOTHING_TO_ABORT "Requested operation is not valid: no suspend request is in progress"
#define TOO_LATE_TO_ABORT \
    "Requested operation is not valid: the suspend has already started, it can no longer be aborted"
#define ABORTED_BY "operation aborted: the suspend request was aborted by process %d"
#define MEM_BIT (1u << VIR_NODE_SUSPEND_TARGET_MEM)
#define STATE "sys/power/state"
#define WAKEALARM "sys/class/rtc/rtc0/wakealarm"
#define RUN_DIR "run/virnodesuspend"
#define RECORD RUN_DIR "/request"

/* How long a child may take before its alarm ends it, and a case waits on a pipe. */
#define HANG_GUARD_SECS 60

/* --- Processes ------------------------------------------------------------------------ */

/* The children of the running case, killed and reaped if the case fails before it has
 * reaped them (so that none is left running on the root the runner removes). */
static pid_t children[8];
static pid_t case_process;

static void kill_children(void)
{
    if (getpid() != case_process)
        return; /* a child ending: its siblings are not its own */
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++) {
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    }
}

/* Forks a child that runs `body` with a hang guard, and exits 0 when it returns (a failed
 * CHECK in it exits 1 after printing why). */
static pid_t start_child(void (*body)(void *), void *arg)
{
    size_t slot = 0;
    if (case_process != getpid()) {
        case_process = getpid();
        CHECK(atexit(kill_children) == 0);
    }
    while (slot < sizeof(children) / sizeof(children[0]) && children[slot] > 0)
        slot++;
    CHECK(slot < sizeof(children) / sizeof(children[0]));
    fflush(stdout); /* or the child would print the case's buffered output again */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(HANG_GUARD_SECS);
        body(arg);
        exit(0);
    }
    children[slot] = pid;
    return pid;
}

static void forget_child(pid_t pid)
{
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
        if (children[i] == pid)
            children[i] = 0;
}

/* Reaps a child; the case fails unless it exited 0. */
static void reap_ok(pid_t pid, const char *who)
{
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    forget_child(pid);
    if (WIFSIGNALED(status))
        printf("# %s (pid %d) was killed by signal %d%s\n", who, (int)pid, WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? " (its hang guard)" : "");
    else if (WEXITSTATUS(status) != 0)
        printf("# %s (pid %d) failed\n", who, (int)pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* --- Pipes ---------------------------------------------------------------------------- */

static void make_pipe(int fds[2])
{
    CHECK(pipe(fds) == 0);
}

static void write_all(int fd, const void *data, size_t size)
{
    const char *bytes = data;
    while (size > 0) {
        ssize_t n = write(fd, bytes, size);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n > 0);
        bytes += n;
        size -= (size_t)n;
    }
}

/* Reads up to `size` bytes, until end of file; waits at most HANG_GUARD_SECS for each.
 * Returns the number read. */
static size_t read_within(int fd, void *data, size_t size)
{
    char *bytes = data;
    size_t got = 0;
    while (got < size) {
        struct pollfd ready = {fd, POLLIN, 0};
        int polled = poll(&ready, 1, HANG_GUARD_SECS * 1000);
        if (polled < 0 && errno == EINTR)
            continue;
        CHECK(polled == 1); /* 0: nothing came within the hang guard's time */
        ssize_t n = read(fd, bytes + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* Whether something (or end of file) can be read from `fd` now. */
static bool readable_now(int fd)
{
    struct pollfd ready = {fd, POLLIN, 0};
    return poll(&ready, 1, 0) == 1;
}

static void signal_once(int fd)
{
    write_all(fd, "!", 1);
}

/* Waits for `signal_once` on the other end; false at end of file (its writer is gone). */
static bool await_signal(int fd)
{
    char byte;
    return read_within(fd, &byte, 1) == 1;
}

/* What a call returned in a process, sent to the case through a pipe in one write (atomic:
 * it is smaller than PIPE_BUF). */
struct answer {
    int pid;
    int ret;
    int code;
    int domain;
    struct timespec at; /* CLOCK_MONOTONIC, when the call returned */
    char message[256];
};

/* The answer of the call that just returned `ret` on this thread. */
static struct answer answer_of(int ret)
{
    struct answer answer;
    const virNodeSuspendError *error = virNodeSuspendGetLastError();
    memset(&answer, 0, sizeof(answer));
    clock_gettime(CLOCK_MONOTONIC, &answer.at);
    answer.pid = (int)getpid();
    answer.ret = ret;
    answer.code = virNodeSuspendGetLastErrorCode();
    answer.domain = error ? error->domain : -1;
    snprintf(answer.message, sizeof(answer.message), "%s", virNodeSuspendGetLastErrorMessage());
    return answer;
}

static void send_answer(int fd, int ret)
{
    struct answer answer = answer_of(ret);
    write_all(fd, &answer, sizeof(answer));
}

static struct answer receive_answer(int fd)
{
    struct answer answer;
    CHECK(read_within(fd, &answer, sizeof(answer)) == sizeof(answer));
    return answer;
}

static double seconds_between(const struct timespec *from, const struct timespec *to)
{
    return (double)(to->tv_sec - from->tv_sec) + (double)(to->tv_nsec - from->tv_nsec) / 1e9;
}

/* --- The host's files ----------------------------------------------------------------- */

/* Whether the host's request record holds the line `key=value` (formatted as printf). */
__attribute__((format(printf, 1, 2))) static bool record_has(const char *format, ...)
{
    char line[512], record[4096 + 2];
    va_list args;
    va_start(args, format);
    vsnprintf(line + 1, sizeof(line) - 2, format, args);
    va_end(args);
    line[0] = '\n';
    strcat(line, "\n");
    snprintf(record, sizeof(record), "\n%s", root_read(RECORD));
    return strstr(record, line) != NULL;
}

/* The record on one line, for a TAP comment (in a static buffer). */
static const char *record_in_one_line(void)
{
    static char text[4096];
    snprintf(text, sizeof(text), "%s", root_read(RECORD));
    for (char *c = text; *c; c++)
        if (*c == '\n')
            *c = c[1] ? ' ' : '\0';
    return text;
}

static bool request_is_suspending(void)
{
    return record_has("state=suspending");
}

static bool exists(const char *relative)
{
    struct stat st;
    return lstat(root_path(relative), &st) == 0;
}

static long long wakealarm_value(void)
{
    return strtoll(root_read(WAKEALARM), NULL, 10);
}

static void replace_state_file_with_a_fifo(void)
{
    root_remove(STATE);
    CHECK(mkfifo(root_path(STATE), 0600) == 0);
}

/* Reads what the writer of the FIFO `fd` (opened O_RDONLY | O_NONBLOCK) writes, until it
 * closes it (into a static buffer). Until a writer comes, poll(2) does not return. */
static const char *read_until_the_writer_closes(int fd)
{
    static char written[64];
    size_t length = 0;
    for (;;) {
        struct pollfd readable = {fd, POLLIN, 0};
        int polled = poll(&readable, 1, HANG_GUARD_SECS * 1000);
        if (polled < 0 && errno == EINTR)
            continue;
        CHECK(polled == 1); /* 0: no one wrote */
        ssize_t n = read(fd, written + length, sizeof(written) - 1 - length);
        if (n < 0 && errno == EAGAIN)
            continue; /* a writer has it open, and has not written yet */
        CHECK(n >= 0);
        length += (size_t)n;
        if (n == 0) /* no writer any more; the first poll only returns once one came */
            break;
        CHECK(length < sizeof(written) - 1);
    }
    written[length] = '\0';
    return written;
}

/* Lets the suspend held on the FIFO sys/power/state go on: opens it for reading, so that
 * the worker's open returns, and returns what it wrote. */
static const char *let_the_held_suspend_write(void)
{
    int fifo = open(root_path(STATE), O_RDONLY | O_NONBLOCK);
    CHECK(fifo >= 0);
    const char *written = read_until_the_writer_closes(fifo);
    CHECK(close(fifo) == 0);
    return written;
}

static bool read_text(const char *path, char *text, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, text, size - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    return n > 0;
}

/* Whether process `pid` is asleep in poll(2), as its wchan shows: the library polls in one
 * place only, a virNodeSuspendWait watching the record of another process's request. */
static bool waiting_for_the_record(pid_t pid)
{
    char path[64], wchan[128];
    snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
    return read_text(path, wchan, sizeof(wchan)) && strstr(wchan, "poll") != NULL;
}

/* The processes a WAIT_FOR below is about (WAIT_FOR's predicates take no argument). */
static pid_t watched[8];
static size_t watched_count;

static void watch(const pid_t *pids, size_t count)
{
    CHECK(count <= sizeof(watched) / sizeof(watched[0]));
    memcpy(watched, pids, count * sizeof(pids[0]));
    watched_count = count;
}

/* Whether every watched process is asleep in its virNodeSuspendWait, watching the record. */
static bool watched_wait_on_the_request(void)
{
    for (size_t i = 0; i < watched_count; i++)
        if (!waiting_for_the_record(watched[i]))
            return false;
    return true;
}

/* How many of this process's file descriptors are open on `path`. */
static int descriptors_open_on(const char *path)
{
    DIR *fds = opendir("/proc/self/fd");
    const struct dirent *fd;
    int count = 0;
    CHECK(fds != NULL);
    while ((fd = readdir(fds)) != NULL) {
        char link[300], target[PATH_MAX];
        if (fd->d_name[0] == '.')
            continue;
        snprintf(link, sizeof(link), "/proc/self/fd/%s", fd->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        count += strcmp(target, path) == 0;
    }
    closedir(fds);
    return count;
}

/*
 * Whether the library's worker thread in this process is asleep in futex(2), waiting for
 * a request or for its delay to pass, with the library's lock released. A fork while the
 * worker holds that lock (for a few file operations after it starts, or after a request
 * ended) would leave the child's copy of the lock held for good: POSIX allows a child of
 * a multithreaded process only async-signal-safe calls until exec. Once no other thread
 * is inside the library, the lock is not contended, so the worker's futex wait is its
 * condition variable's. (The worker is the thread named "node-suspend".)
 */
/* The system call the library's worker thread in this process is in ("running": -1; no
 * worker: -2). */
static long worker_syscall(void)
{
    DIR *tasks = opendir("/proc/self/task");
    long in = -2;
    const struct dirent *task;
    CHECK(tasks != NULL);
    while ((task = readdir(tasks)) != NULL) {
        char path[300], text[256];
        if (task->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", task->d_name);
        if (!read_text(path, text, sizeof(text)) || strcmp(text, "node-suspend\n") != 0)
            continue;
        /* "running", or the number of the system call it is blocked in and its arguments. */
        snprintf(path, sizeof(path), "/proc/self/task/%s/syscall", task->d_name);
        in = read_text(path, text, sizeof(text)) && strncmp(text, "running", 7) != 0 ? strtol(text, NULL, 10) : -1;
    }
    closedir(tasks);
    return in;
}

static bool worker_is_parked(void)
{
    return worker_syscall() == SYS_futex;
}

/* --- virNodeSuspendGetInfo ------------------------------------------------------------ */

static virNodeSuspendInfo get_info(void)
{
    virNodeSuspendInfo info;
    memset(&info, 0x5a, sizeof(info));
    CHECK(virNodeSuspendGetInfo(&info, 0) == 0);
    CHECK(virNodeSuspendGetLastError() == NULL);
    return info;
}

static void print_info(const char *when, const virNodeSuspendInfo *info)
{
    printf("# GetInfo %s: state %d target %d pid %d backend %s acceptedAt %lld wakeAt %lld "
           "lastOutcome %d lastTarget %d lastError %s\n",
           when, info->state, info->target, info->pid, info->backend ? info->backend : "NULL", info->acceptedAt,
           info->wakeAt, info->lastOutcome, info->lastTarget, info->lastError ? info->lastError : "NULL");
}

/* The fields about the request in progress, when there is none. */
static void check_no_request_in(const virNodeSuspendInfo *info)
{
    CHECK(info->state == VIR_NODE_SUSPEND_STATE_IDLE);
    CHECK(info->target == -1);
    CHECK(info->pid == 0);
    CHECK(info->backend == NULL);
    CHECK(info->acceptedAt == -1);
    CHECK(info->wakeAt == -1);
}

/* The fields of a kernel-backend request for mem by `owner`, the alarm as in the file. */
static void check_request_in(const virNodeSuspendInfo *info, int state, pid_t owner)
{
    CHECK(info->state == state);
    CHECK(info->target == VIR_NODE_SUSPEND_TARGET_MEM);
    CHECK(info->pid == (int)owner);
    CHECK_STR(info->backend, "kernel");
    CHECK(info->wakeAt == wakealarm_value());
    CHECK(llabs(info->acceptedAt - (long long)time(NULL)) <= 60);
}

/* --- 1. Processes racing ---------------------------------------------------------------- */

#define PROCESSES 4
#define THREADS 8

struct race {
    int ready[2];   /* each process: its capability query is done */
    int release[2]; /* closed by the case: all processes go */
    int answers[2]; /* each thread's answer to virNodeSuspend */
    pthread_barrier_t start;
};

static void *race_in_a_thread(void *arg)
{
    struct race *race = arg;
    pthread_barrier_wait(&race->start);
    struct answer answer = answer_of(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0));
    write_all(race->answers[1], &answer, sizeof(answer));
    return (void *)(answer.ret == 0 ? race : NULL);
}

static void race_in_a_process(void *arg)
{
    struct race *race = arg;
    pthread_t threads[THREADS];
    int accepted = 0;
    CHECK(close(race->release[1]) == 0 && close(race->ready[0]) == 0 && close(race->answers[0]) == 0);
    /* The kernel backend's capability query reads sys/power/state: before it is a FIFO. */
    unsigned int mask = 0;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    CHECK(mask == MEM_BIT);
    CHECK(pthread_barrier_init(&race->start, NULL, THREADS + 1) == 0);
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, race_in_a_thread, race) == 0);
    signal_once(race->ready[1]);
    CHECK(close(race->ready[1]) == 0);
    char byte;
    CHECK(read_within(race->release[0], &byte, 1) == 0); /* the case closed it: go */
    pthread_barrier_wait(&race->start);
    for (int i = 0; i < THREADS; i++) {
        void *won;
        CHECK(pthread_join(threads[i], &won) == 0);
        accepted += won != NULL;
    }
    pthread_barrier_destroy(&race->start);
    CHECK(accepted <= 1);
    /* The winner's own request; a loser waits for the winner's, the host's request (the
     * case sees it asleep watching the record), and gets its outcome. Either returns
     * once the case has read what the winner's worker writes to the FIFO. */
    CHECK(virNodeSuspendWait() == 0);
    CHECK(virNodeSuspendGetLastError() == NULL);
}

static void processes_and_threads_racing_on_one_host_get_one_request(void)
{
    root_host_without_swap();
    use_fake_root("0");
    struct race race;
    pid_t pids[PROCESSES];
    struct answer answers[PROCESSES * THREADS];
    make_pipe(race.ready);
    make_pipe(race.release);
    make_pipe(race.answers);
    for (int i = 0; i < PROCESSES; i++)
        pids[i] = start_child(race_in_a_process, &race);
    CHECK(close(race.ready[1]) == 0 && close(race.answers[1]) == 0 && close(race.release[0]) == 0);
    char ready[PROCESSES];
    CHECK(read_within(race.ready[0], ready, sizeof(ready)) == PROCESSES);

    /* The winner's write to sys/power/state blocks until the case reads the FIFO. */
    replace_state_file_with_a_fifo();
    CHECK(close(race.release[1]) == 0);
    CHECK(read_within(race.answers[0], answers, sizeof(answers)) == sizeof(answers));
    int accepted = 0, refused = 0;
    pid_t winner = 0;
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        if (answers[i].ret == 0 && answers[i].code == 0) {
            accepted++;
            winner = answers[i].pid;
        } else if (answers[i].ret == -1 && answers[i].code == VIR_ERR_OPERATION_INVALID &&
                   strcmp(answers[i].message, IN_PROGRESS) == 0) {
            refused++;
        } else {
            printf("# unexpected answer: %d, code %d: %s\n", answers[i].ret, answers[i].code, answers[i].message);
        }
    }
    printf("# accepted %d, refused %d\n", accepted, refused);
    CHECK(accepted == 1);
    CHECK(refused == PROCESSES * THREADS - 1);
    /* Armed once, for the RTC's reading + 60 + 1. */
    CHECK_STR(root_read(WAKEALARM), fake_host_alarm(60));
    CHECK(record_has("target=mem"));
    CHECK(record_has("pid=%d", (int)winner));

    /* The losers' virNodeSuspendWait is waiting for the winner's request. */
    pid_t losers[PROCESSES - 1];
    size_t loser_count = 0;
    for (int i = 0; i < PROCESSES; i++)
        if (pids[i] != winner)
            losers[loser_count++] = pids[i];
    CHECK(loser_count == PROCESSES - 1);
    watch(losers, loser_count);
    WAIT_FOR(watched_wait_on_the_request);
    printf("# the %zu losing processes are asleep in virNodeSuspendWait, watching the record\n", loser_count);

    /* What the winner writes: no one else may write, then or later (the FIFO stays open
     * for reading until every process is gone, so that a later write would be kept). */
    int fifo = open(root_path(STATE), O_RDONLY | O_NONBLOCK);
    char rest[8];
    CHECK(fifo >= 0);
    CHECK_STR(read_until_the_writer_closes(fifo), "mem");
    for (int i = 0; i < PROCESSES; i++)
        reap_ok(pids[i], "a racing process");
    CHECK(read(fifo, rest, sizeof(rest)) == 0);
    CHECK(close(fifo) == 0 && close(race.ready[0]) == 0 && close(race.answers[0]) == 0);
    CHECK_STR(root_read(WAKEALARM), "0");
    CHECK(record_has("state=idle"));
    CHECK(record_has("last_outcome=back"));
}

/* --- 2. Another process's request, and an alarm someone else set ---------------------- */

struct two_processes {
    int ready[2];   /* B: its capability query is done */
    int go[2];      /* A: its request is in progress */
    int refused[2]; /* B: its own request was refused; it waits for A's */
};

/* The message of a write of 'mem' to the FIFO sys/power/state once it has no reader. */
static const char *broken_pipe_message(void)
{
    static char message[512];
    snprintf(message, sizeof(message), "Unable to write 'mem' to '%s': Broken pipe", root_path(STATE));
    return message;
}

static void ask_and_wait_while_another_process_requests(void *arg)
{
    struct two_processes *pipes = arg;
    unsigned int mask = 0;
    CHECK(close(pipes->ready[0]) == 0 && close(pipes->go[1]) == 0 && close(pipes->refused[0]) == 0);
    /* This process's first call: the library configures itself here, and queries the host
     * before A makes sys/power/state a FIFO. */
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    CHECK(mask == MEM_BIT);
    signal_once(pipes->ready[1]);
    CHECK(await_signal(pipes->go[0]));
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, IN_PROGRESS);
    signal_once(pipes->refused[1]);
    /* A's request is the host's: this waits for it, and gets A's failure as A does. */
    CHECK(virNodeSuspendWait() == -1);
    CHECK_ERROR(VIR_ERR_SYSTEM_ERROR, VIR_FROM_NONE, broken_pipe_message());
    printf("# B's virNodeSuspendWait: -1, code %d: %s\n", virNodeSuspendGetLastErrorCode(),
           virNodeSuspendGetLastErrorMessage());
}

/* Opens the FIFO sys/power/state for reading and writing, and fills it: a writer's open
 * then returns at once, and its write blocks until the returned descriptor is closed
 * (then fails, EPIPE). `filled`: the bytes in it. */
static int open_the_state_fifo_full(size_t *filled)
{
    int fifo = open(root_path(STATE), O_RDWR | O_NONBLOCK);
    static const char page[PIPE_BUF];
    ssize_t n;
    CHECK(fifo >= 0);
    while ((n = write(fifo, page, sizeof(page))) > 0) /* whole pages, then single bytes */
        *filled += (size_t)n;
    while ((n = write(fifo, page, 1)) > 0)
        *filled += (size_t)n;
    CHECK(n < 0 && errno == EAGAIN);
    return fifo;
}

/* Whether this process's worker has the FIFO sys/power/state open, besides the case. */
static bool worker_opened_the_state_fifo(void)
{
    return descriptors_open_on(root_path(STATE)) == 2;
}

static void another_processs_request_is_refused_waited_for_and_its_failure_leaves_anothers_alarm(void)
{
    root_host_without_swap();
    use_fake_root("0");
    struct two_processes pipes;
    make_pipe(pipes.ready);
    make_pipe(pipes.go);
    make_pipe(pipes.refused);
    pid_t b = start_child(ask_and_wait_while_another_process_requests, &pipes);
    CHECK(close(pipes.ready[1]) == 0 && close(pipes.go[0]) == 0 && close(pipes.refused[1]) == 0);
    CHECK(await_signal(pipes.ready[0]));

    /* A, this process: its capability query, then a suspend held in its write to
     * sys/power/state, a FIFO this process holds open and full: the worker's open returns
     * at once, its write blocks until the case closes its end, then fails (EPIPE). */
    unsigned int mask = 0;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    replace_state_file_with_a_fifo();
    size_t filled = 0;
    int fifo = open_the_state_fifo_full(&filled);
    CHECK(signal(SIGPIPE, SIG_IGN) != SIG_ERR); /* the worker's write then fails with EPIPE */
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    CHECK_STR(root_read(WAKEALARM), fake_host_alarm(60));
    WAIT_FOR(worker_opened_the_state_fifo);
    CHECK(record_has("state=suspending"));
    CHECK(record_has("pid=%d", (int)getpid()));
    printf("# A's suspend holds in its write to the FIFO (%zu bytes in it)\n", filled);
    fflush(stdout);

    signal_once(pipes.go[1]);
    CHECK(await_signal(pipes.refused[0]));
    watch(&b, 1);
    WAIT_FOR(watched_wait_on_the_request);
    CHECK(!readable_now(pipes.refused[0])); /* B has not returned */

    /* An administrator's rtcwake while A's request is in progress: the alarm is theirs. */
    root_write(WAKEALARM, "1800007200");
    CHECK(request_is_suspending());

    CHECK(close(fifo) == 0);
    CHECK(virNodeSuspendWait() == -1);
    CHECK_ERROR(VIR_ERR_SYSTEM_ERROR, VIR_FROM_NONE, broken_pipe_message());
    CHECK(virNodeSuspendGetLastError()->int1 == EPIPE);
    CHECK_STR(root_read(WAKEALARM), "1800007200");
    CHECK(record_has("state=idle"));
    CHECK(record_has("last_outcome=failed"));
    CHECK(record_has("last_error=%s", broken_pipe_message()));
    CHECK(record_has("last_code=%d", VIR_ERR_SYSTEM_ERROR));
    CHECK(record_has("last_domain=%d", VIR_FROM_NONE));
    reap_ok(b, "process B");
    CHECK(close(pipes.ready[0]) == 0 && close(pipes.go[1]) == 0 && close(pipes.refused[0]) == 0);
}

/* --- 3. A process killed while its request is pending --------------------------------- */

static void request_and_stay(void *arg)
{
    int *reported = arg;
    use_fake_root("3600"); /* pending for the whole case */
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0) == 0);
    signal_once(reported[1]);
    for (;;)
        pause();
}

static void request_of_a_process_killed_during_the_delay_is_settled_by_the_next_process(void)
{
    root_host_without_swap();
    int reported[2];
    int status;
    make_pipe(reported);
    pid_t a = start_child(request_and_stay, reported);
    CHECK(close(reported[1]) == 0);
    CHECK(await_signal(reported[0]));
    CHECK(close(reported[0]) == 0);
    CHECK(record_has("state=pending"));
    CHECK(record_has("pid=%d", (int)a));
    CHECK_STR(root_read(WAKEALARM), "1800003651");

    CHECK(kill(a, SIGKILL) == 0);
    CHECK(waitpid(a, &status, 0) == a);
    forget_child(a);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* A new process (this one: it has not called the library yet); its first call. */
    use_fake_root("0");
    unsigned int mask = 0;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    printf("# after SIGKILL of process %d, the next process's first call left wakealarm '%s'\n", (int)a,
           root_read(WAKEALARM));
    printf("# and the record: %s\n", record_in_one_line());
    CHECK_STR(root_read(WAKEALARM), "0");
    CHECK(record_has("state=idle"));
    CHECK(record_has("last_outcome=abandoned"));
    CHECK(record_has("last_target=mem"));
    CHECK(record_has("last_error=process %d ended before the suspend started", (int)a));
    CHECK(!record_has("pid=%d", (int)a));

    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    CHECK(virNodeSuspendWait() == 0);
    CHECK_STR(root_read(STATE), "mem");
    CHECK(record_has("last_outcome=back"));
}

/* --- Asking and cancelling (issue 12) ------------------------------------------------- */

/* An owner: requests mem for `duration` s, says so on `accepted`, then sends the answer of
 * its virNodeSuspendWait on `waited`. */
struct owner {
    unsigned long long duration;
    int accepted[2];
    int waited[2];
};

static void make_owner_pipes(struct owner *owner, unsigned long long duration)
{
    owner->duration = duration;
    make_pipe(owner->accepted);
    make_pipe(owner->waited);
}

static void request_then_wait(void *arg)
{
    struct owner *owner = arg;
    CHECK(close(owner->accepted[0]) == 0 && close(owner->waited[0]) == 0);
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, owner->duration, 0) == 0);
    signal_once(owner->accepted[1]);
    send_answer(owner->waited[1], virNodeSuspendWait());
}

/* Starts an owner and returns once its request is accepted. */
static pid_t start_owner(struct owner *owner)
{
    pid_t pid = start_child(request_then_wait, owner);
    CHECK(close(owner->accepted[1]) == 0 && close(owner->waited[1]) == 0);
    CHECK(await_signal(owner->accepted[0]));
    return pid;
}

static void close_owner_pipes(struct owner *owner)
{
    CHECK(close(owner->accepted[0]) == 0 && close(owner->waited[0]) == 0);
}

/* The capability query, in this process: its children inherit the answer, so that
 * sys/power/state can then be made a FIFO to hold their suspend on. */
static void query_then_hold_suspends_on_a_fifo(void)
{
    unsigned int mask = 0;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    CHECK(mask == MEM_BIT);
    replace_state_file_with_a_fifo();
}

static void request_made_in_one_process_is_seen_by_get_info_in_another(void)
{
    root_host_without_swap();
    /* The request stays pending for the delay, 10 s: this process looks at it at once. */
    use_fake_root("10");

    /* A host that never had a request; looking made nothing. */
    virNodeSuspendInfo info = get_info();
    print_info("on a fresh root", &info);
    check_no_request_in(&info);
    CHECK(info.lastOutcome == VIR_NODE_SUSPEND_OUTCOME_NONE);
    CHECK(info.lastTarget == -1);
    CHECK(info.lastError == NULL);
    CHECK(!exists(RUN_DIR));

    query_then_hold_suspends_on_a_fifo();
    struct owner owner;
    make_owner_pipes(&owner, 60);
    pid_t pid = start_owner(&owner);
    info = get_info();
    print_info("while pending", &info);
    if (info.state != VIR_NODE_SUSPEND_STATE_PENDING)
        printf("# not pending: this machine took longer than the delay (10 s) to look\n");
    check_request_in(&info, VIR_NODE_SUSPEND_STATE_PENDING, pid);
    CHECK(info.wakeAt == strtoll(fake_host_alarm(60), NULL, 10));
    CHECK(info.lastOutcome == VIR_NODE_SUSPEND_OUTCOME_NONE);
    CHECK(info.lastTarget == -1);
    CHECK(info.lastError == NULL);

    /* After the delay, held in the owner's open of the FIFO. */
    WAIT_FOR(request_is_suspending);
    info = get_info();
    check_request_in(&info, VIR_NODE_SUSPEND_STATE_SUSPENDING, pid);

    CHECK_STR(let_the_held_suspend_write(), "mem");
    struct answer waited = receive_answer(owner.waited[0]);
    CHECK(waited.ret == 0 && waited.code == 0);
    reap_ok(pid, "the owner");
    info = get_info();
    print_info("after it ended", &info);
    check_no_request_in(&info);
    CHECK(info.lastOutcome == VIR_NODE_SUSPEND_OUTCOME_BACK);
    CHECK(info.lastTarget == VIR_NODE_SUSPEND_TARGET_MEM);
    CHECK(info.lastError == NULL);
    CHECK_STR(root_read(WAKEALARM), "0");
    close_owner_pipes(&owner);
}

static void abort_from_another_process_during_the_delay_cancels_the_request(void)
{
    root_host_without_swap();
    use_fake_root("3600"); /* pending for the whole case */
    struct owner owner;
    make_owner_pipes(&owner, 3650);
    pid_t pid = start_owner(&owner);
    virNodeSuspendInfo info = get_info();
    check_request_in(&info, VIR_NODE_SUSPEND_STATE_PENDING, pid);
    CHECK_STR(root_read(WAKEALARM), "1800003651");

    char aborted_by_me[128];
    snprintf(aborted_by_me, sizeof(aborted_by_me), ABORTED_BY, (int)getpid());
    struct timespec aborted_at;
    CHECK(virNodeSuspendAbort(0) == 0);
    CHECK(clock_gettime(CLOCK_MONOTONIC, &aborted_at) == 0);
    CHECK(virNodeSuspendGetLastError() == NULL);
    /* In effect when it returns. */
    CHECK_STR(root_read(WAKEALARM), "0");
    info = get_info();
    print_info("once aborted", &info);
    check_no_request_in(&info);
    CHECK(info.lastOutcome == VIR_NODE_SUSPEND_OUTCOME_ABORTED);
    CHECK(info.lastTarget == VIR_NODE_SUSPEND_TARGET_MEM);
    CHECK_STR(info.lastError, aborted_by_me);
    CHECK(record_has("last_code=%d", VIR_ERR_OPERATION_ABORTED));

    /* A new request is accepted at once, most likely before the owner's worker has seen
     * the abort (it looks every 250 ms): the aborted owner must leave it in the record. */
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0) == 0);
    CHECK_STR(root_read(WAKEALARM), "1800003651");

    struct answer waited = receive_answer(owner.waited[0]);
    printf("# the owner's virNodeSuspendWait: %d, code %d, %.3f s after the abort returned: %s\n", waited.ret,
           waited.code, seconds_between(&aborted_at, &waited.at), waited.message);
    CHECK(waited.ret == -1);
    CHECK(waited.code == VIR_ERR_OPERATION_ABORTED);
    CHECK(waited.domain == VIR_FROM_NONE);
    CHECK_STR(waited.message, aborted_by_me);
    CHECK(seconds_between(&aborted_at, &waited.at) < 10);
    reap_ok(pid, "the owner");
    CHECK_STR(root_read(STATE), fake_host_read(STATE)); /* nothing ever reached it */

    /* The new request is still the host's. */
    info = get_info();
    print_info("with the new request", &info);
    check_request_in(&info, VIR_NODE_SUSPEND_STATE_PENDING, getpid());
    CHECK(info.lastOutcome == VIR_NODE_SUSPEND_OUTCOME_ABORTED);
    CHECK_STR(info.lastError, aborted_by_me);
    CHECK_STR(root_read(WAKEALARM), "1800003651");
    CHECK(virNodeSuspendAbort(0) == 0);
    CHECK(virNodeSuspendWait() == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_ABORTED, VIR_FROM_NONE, aborted_by_me);
    CHECK_STR(root_read(STATE), fake_host_read(STATE));
    CHECK_STR(root_read(WAKEALARM), "0");
    close_owner_pipes(&owner);
}

static void abort_while_suspending_or_with_nothing_in_progress_is_refused_and_changes_nothing(void)
{
    char before[4096];
    root_host_without_swap();
    use_fake_root("0");

    /* Nothing ever requested: nothing made either. */
    CHECK(virNodeSuspendAbort(0) == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, NOTHING_TO_ABORT);
    CHECK(!exists(RUN_DIR));

    query_then_hold_suspends_on_a_fifo();
    struct owner owner;
    make_owner_pipes(&owner, 60);
    pid_t pid = start_owner(&owner);
    WAIT_FOR(request_is_suspending);
    snprintf(before, sizeof(before), "%s", root_read(RECORD));
    CHECK(virNodeSuspendAbort(0) == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, TOO_LATE_TO_ABORT);
    printf("# while suspending: %s\n", virNodeSuspendGetLastErrorMessage());
    CHECK_STR(root_read(RECORD), before);
    CHECK_STR(root_read(WAKEALARM), fake_host_alarm(60));
    virNodeSuspendInfo info = get_info();
    check_request_in(&info, VIR_NODE_SUSPEND_STATE_SUSPENDING, pid);

    CHECK_STR(let_the_held_suspend_write(), "mem");
    struct answer waited = receive_answer(owner.waited[0]);
    CHECK(waited.ret == 0 && waited.code == 0);
    reap_ok(pid, "the owner");

    /* Over: nothing in progress. */
    snprintf(before, sizeof(before), "%s", root_read(RECORD));
    CHECK(record_has("last_outcome=back"));
    CHECK(virNodeSuspendAbort(0) == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, NOTHING_TO_ABORT);
    printf("# with nothing in progress: %s\n", virNodeSuspendGetLastErrorMessage());
    CHECK_STR(root_read(RECORD), before);
    CHECK_STR(root_read(WAKEALARM), "0");
    info = get_info();
    check_no_request_in(&info);
    CHECK(info.lastOutcome == VIR_NODE_SUSPEND_OUTCOME_BACK);
    close_owner_pipes(&owner);
}

/* A process that waits for the host's request, whoever made it, and sends the answer;
 * then, nothing being in progress, the host's last outcome. */
static void wait_for_the_hosts_request(void *arg)
{
    int *answered = arg;
    CHECK(close(answered[0]) == 0);
    send_answer(answered[1], virNodeSuspendWait());
    CHECK(virNodeSuspendWait() == 0);
}

static void third_processs_wait_returns_when_the_owners_request_is_over_with_its_outcome(void)
{
    root_host_without_swap();
    use_fake_root("0");
    query_then_hold_suspends_on_a_fifo();
    struct owner owner;
    make_owner_pipes(&owner, 60);
    pid_t pid = start_owner(&owner);
    WAIT_FOR(request_is_suspending);

    int answered[2];
    make_pipe(answered);
    pid_t waiter = start_child(wait_for_the_hosts_request, answered);
    CHECK(close(answered[1]) == 0);
    watch(&waiter, 1);
    WAIT_FOR(watched_wait_on_the_request);
    CHECK(!readable_now(answered[0]));

    struct timespec released;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &released) == 0);
    CHECK_STR(let_the_held_suspend_write(), "mem");
    struct answer waited = receive_answer(answered[0]);
    printf("# the third process's virNodeSuspendWait: %d, code %d, %.3f s after the suspend was let go\n",
           waited.ret, waited.code, seconds_between(&released, &waited.at));
    CHECK(waited.ret == 0 && waited.code == 0);
    CHECK(waited.pid == (int)waiter);
    struct answer owners = receive_answer(owner.waited[0]);
    CHECK(owners.ret == 0 && owners.code == 0);
    reap_ok(waiter, "the waiting process");
    reap_ok(pid, "the owner");
    CHECK(record_has("last_outcome=back"));
    CHECK(close(answered[0]) == 0);
    close_owner_pipes(&owner);
}

static void get_info_and_abort_check_their_flags_and_arguments(void)
{
    root_host_without_swap();
    use_fake_root("3600");
    virNodeSuspendInfo info, untouched;
    memset(&info, 0x5a, sizeof(info));
    memcpy(&untouched, &info, sizeof(info));

    CHECK(virNodeSuspendGetInfo(&info, 1) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "unsupported flags (0x1) in function virNodeSuspendGetInfo");
    CHECK(memcmp(&info, &untouched, sizeof(info)) == 0);
    CHECK(virNodeSuspendGetInfo(&info, 0x80000000u) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE,
                "unsupported flags (0x80000000) in function virNodeSuspendGetInfo");
    CHECK(virNodeSuspendGetInfo(NULL, 0) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "info in virNodeSuspendGetInfo must not be NULL");
    CHECK(virNodeSuspendAbort(1) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "unsupported flags (0x1) in function virNodeSuspendAbort");

    /* With a request pending: refused before anything is looked at, the request left alone. */
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0) == 0);
    CHECK(virNodeSuspendAbort(0x80000000u) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE,
                "unsupported flags (0x80000000) in function virNodeSuspendAbort");
    CHECK(virNodeSuspendGetInfo(&info, 2) == -1);
    CHECK_ERROR(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "unsupported flags (0x2) in function virNodeSuspendGetInfo");
    CHECK(memcmp(&info, &untouched, sizeof(info)) == 0);
    CHECK_STR(root_read(WAKEALARM), "1800003651");
    info = get_info(); /* and a call that succeeds clears the thread's error */
    check_request_in(&info, VIR_NODE_SUSPEND_STATE_PENDING, getpid());
    CHECK(virNodeSuspendAbort(0) == 0);
    CHECK(virNodeSuspendWait() == -1);
    CHECK(virNodeSuspendGetLastErrorCode() == VIR_ERR_OPERATION_ABORTED);
}

/* --- What another process sees (GetInfo), and an unprivileged process ------------------- */

/* What a process's virNodeSuspendGetInfo returned, sent to the case in one write. */
struct seen {
    int pid;
    int ret;
    int state;
    int owner;
    int last_outcome;
    int last_target;
    long long wake_at;
    int lock_descriptors_before; /* its descriptors on the request's lock, before the call */
    int lock_descriptors_after;  /*   and after it (-1: not counted) */
    char last_error[256];
    char message[256]; /* its error, when ret is -1 */
    char blocked[512]; /* what kept it from reading the record ("": nothing) */
    bool lock_readable; /* whether it could open the request's lock */
};

/* The value of `key` in the host's request record, as this process can read it (in a static
 * buffer; "" when absent). */
static const char *record_value(const char *key)
{
    static char value[256];
    char record[4096 + 2], *line, *rest = NULL;
    size_t length = strlen(key);
    snprintf(record, sizeof(record), "%s", root_read(RECORD));
    value[0] = '\0';
    for (line = strtok_r(record, "\n", &rest); line != NULL; line = strtok_r(NULL, "\n", &rest))
        if (strncmp(line, key, length) == 0 && line[length] == '=')
            snprintf(value, sizeof(value), "%s", line + length + 1);
    return value;
}

/* The request's lock file `name` relative to the root (in a static buffer). */
static const char *lock_relative(const char *name)
{
    static char relative[300];
    snprintf(relative, sizeof(relative), RUN_DIR "/%s", name);
    return relative;
}

/* The path of the request's lock file the record names ("" when it names none). */
static void lock_path(char *path, size_t size)
{
    const char *lock = record_value("lock");
    path[0] = '\0';
    if (lock[0] != '\0')
        snprintf(path, size, "%s", root_path(lock_relative(lock)));
}

/* Appends to `why` the first component of `path` (absolute) this process may not search,
 * or, the last one, open with `last_access`; with its mode and owner. */
static void first_blocking_component(char *why, size_t size, const char *path, int last_access)
{
    char prefix[PATH_MAX];
    size_t length = strlen(path), used = strlen(why);
    for (size_t i = 1; i <= length; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        memcpy(prefix, path, i);
        prefix[i] = '\0';
        if (access(prefix, path[i] == '\0' ? last_access : X_OK) == 0)
            continue;
        int error = errno;
        struct stat st;
        if (stat(prefix, &st) == 0)
            snprintf(why + used, size - used, "%s%s (mode %04o, uid %d, gid %d): %s", used ? "; " : "", prefix,
                     (unsigned)(st.st_mode & 07777), (int)st.st_uid, (int)st.st_gid, strerror(error));
        else
            snprintf(why + used, size - used, "%s%s: %s", used ? "; " : "", prefix, strerror(error));
        return;
    }
}

/* This process's virNodeSuspendGetInfo, with its descriptors on the request's lock before
 * and after it when `count_lock` (the record names the lock; read before the call). */
static struct seen look(bool count_lock)
{
    struct seen seen;
    virNodeSuspendInfo info;
    char lock[PATH_MAX];
    memset(&seen, 0, sizeof(seen));
    memset(&info, 0x5a, sizeof(info));
    lock_path(lock, sizeof(lock));
    seen.pid = (int)getpid();
    seen.lock_descriptors_before = count_lock && lock[0] ? descriptors_open_on(lock) : -1;
    seen.ret = virNodeSuspendGetInfo(&info, 0);
    seen.lock_descriptors_after = count_lock && lock[0] ? descriptors_open_on(lock) : -1;
    if (seen.ret == 0) {
        seen.state = info.state;
        seen.owner = info.pid;
        seen.wake_at = info.wakeAt;
        seen.last_outcome = info.lastOutcome;
        seen.last_target = info.lastTarget;
        snprintf(seen.last_error, sizeof(seen.last_error), "%s", info.lastError ? info.lastError : "(NULL)");
    } else {
        snprintf(seen.message, sizeof(seen.message), "%s", virNodeSuspendGetLastErrorMessage());
    }
    first_blocking_component(seen.blocked, sizeof(seen.blocked), root_path(RECORD), R_OK);
    seen.lock_readable = lock[0] && access(lock, R_OK) == 0;
    return seen;
}

static void send_seen(int fd, bool count_lock)
{
    struct seen seen = look(count_lock);
    write_all(fd, &seen, sizeof(seen));
}

static struct seen receive_seen(int fd)
{
    struct seen seen;
    CHECK(read_within(fd, &seen, sizeof(seen)) == sizeof(seen));
    printf("# process %d's GetInfo: %d, state %d pid %d wakeAt %lld lastOutcome %d lastTarget %d lastError %s%s%s\n",
           seen.pid, seen.ret, seen.state, seen.owner, seen.wake_at, seen.last_outcome, seen.last_target,
           seen.last_error, seen.ret ? "; error: " : "", seen.message);
    if (seen.blocked[0])
        printf("# process %d may not read: %s\n", seen.pid, seen.blocked);
    return seen;
}

/* A process forked before the case's first call, which waits for `go` and then looks at
 * the host's request (its first call: the library configures itself in it). */
struct fresh {
    int go[2];
    int seen[2];
};

static void look_when_told(void *arg)
{
    struct fresh *fresh = arg;
    CHECK(close(fresh->go[1]) == 0 && close(fresh->seen[0]) == 0);
    CHECK(await_signal(fresh->go[0]));
    send_seen(fresh->seen[1], false);
}

static pid_t start_fresh_process(struct fresh *fresh)
{
    make_pipe(fresh->go);
    make_pipe(fresh->seen);
    pid_t pid = start_child(look_when_told, fresh);
    CHECK(close(fresh->go[0]) == 0 && close(fresh->seen[1]) == 0);
    return pid;
}

static void close_fresh_pipes(struct fresh *fresh)
{
    CHECK(close(fresh->go[1]) == 0 && close(fresh->seen[0]) == 0);
}

#define NOBODY 65534

/* The unprivileged process: nobody before its first call, it looks at the host's request,
 * then waits for it. */
struct unprivileged {
    int go[2];       /* the case: its request is pending */
    int seen[2];     /* the process: what its GetInfo returned */
    int answered[2]; /* the process: its virNodeSuspendWait's answer */
};

static void look_and_wait_as_nobody(void *arg)
{
    struct unprivileged *pipes = arg;
    CHECK(close(pipes->go[1]) == 0 && close(pipes->seen[0]) == 0 && close(pipes->answered[0]) == 0);
    CHECK(setgroups(0, NULL) == 0);
    CHECK(setgid(NOBODY) == 0);
    CHECK(setuid(NOBODY) == 0);
    CHECK(getuid() == NOBODY && geteuid() == NOBODY && getgid() == NOBODY && getegid() == NOBODY);
    CHECK(await_signal(pipes->go[0]));
    send_seen(pipes->seen[1], false);
    send_answer(pipes->answered[1], virNodeSuspendWait());
}

static int answered_fd;

/* Whether the watched process waits for the request, or has answered (the case then
 * tells that it did not wait). */
static bool watched_wait_or_answered(void)
{
    return readable_now(answered_fd) || watched_wait_on_the_request();
}

static unsigned file_mode(const char *relative)
{
    struct stat st;
    CHECK(stat(root_path(relative), &st) == 0);
    return (unsigned)(st.st_mode & 07777);
}

static void unprivileged_process_waits_for_roots_request_until_it_is_aborted(void)
{
    harness_need_root("becoming nobody");
    root_host_without_swap();
    use_fake_root("3600"); /* pending for the whole case */
    /* mkdtemp made the fake root 0700: nobody may not even reach it. */
    CHECK(chmod(root_path("."), 0755) == 0);
    struct unprivileged pipes;
    make_pipe(pipes.go);
    make_pipe(pipes.seen);
    make_pipe(pipes.answered);
    /* Forked before this process's first call: a process of its own for the library. */
    pid_t nobody = start_child(look_and_wait_as_nobody, &pipes);
    CHECK(close(pipes.go[0]) == 0 && close(pipes.seen[1]) == 0 && close(pipes.answered[1]) == 0);

    /* A, this process (root): its request, pending. */
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0) == 0);
    CHECK_STR(root_read(WAKEALARM), "1800003651");
    char lock[300];
    snprintf(lock, sizeof(lock), "%s", lock_relative(record_value("lock")));
    printf("# modes: fake root %04o, %s %04o, request %04o, guard %04o, %s %04o\n", file_mode("."), RUN_DIR,
           file_mode(RUN_DIR), file_mode(RECORD), file_mode(RUN_DIR "/guard"), lock, file_mode(lock));
    CHECK(file_mode(RUN_DIR "/guard") == 0600);
    CHECK(file_mode(lock) == 0600);

    signal_once(pipes.go[1]);
    struct seen seen = receive_seen(pipes.seen[0]);
    CHECK(seen.blocked[0] == '\0');
    CHECK(!seen.lock_readable); /* a lock it could open, it could hold */
    CHECK(seen.ret == 0);
    CHECK(seen.state == VIR_NODE_SUSPEND_STATE_PENDING);
    CHECK(seen.owner == (int)getpid());
    CHECK(seen.wake_at == 1800003651);

    /* Its wait watches the record (it could not even open the lock). */
    answered_fd = pipes.answered[0];
    watch(&nobody, 1);
    WAIT_FOR(watched_wait_or_answered);
    if (readable_now(pipes.answered[0])) {
        struct answer early = receive_answer(pipes.answered[0]);
        printf("# nobody's virNodeSuspendWait did not wait: %d, code %d: %s\n", early.ret, early.code,
               early.message);
        CHECK(!"nobody's virNodeSuspendWait waits for the request");
    }
    printf("# nobody (pid %d) is asleep in virNodeSuspendWait, watching the record\n", (int)nobody);
    CHECK(record_has("state=pending"));
    CHECK(record_has("pid=%d", (int)getpid()));
    CHECK_STR(root_read(WAKEALARM), "1800003651");

    char aborted_by_me[128];
    snprintf(aborted_by_me, sizeof(aborted_by_me), ABORTED_BY, (int)getpid());
    struct timespec aborted_at;
    CHECK(virNodeSuspendAbort(0) == 0);
    CHECK(clock_gettime(CLOCK_MONOTONIC, &aborted_at) == 0);
    struct answer waited = receive_answer(pipes.answered[0]);
    printf("# nobody's virNodeSuspendWait: %d, code %d, %.3f s after the abort returned: %s\n", waited.ret,
           waited.code, seconds_between(&aborted_at, &waited.at), waited.message);
    CHECK(waited.ret == -1);
    CHECK(waited.code == VIR_ERR_OPERATION_ABORTED);
    CHECK(waited.domain == VIR_FROM_NONE);
    CHECK_STR(waited.message, aborted_by_me);
    CHECK(virNodeSuspendWait() == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_ABORTED, VIR_FROM_NONE, aborted_by_me);
    reap_ok(nobody, "the unprivileged process");
    CHECK_STR(root_read(WAKEALARM), "0");
    CHECK(record_has("state=idle"));
    CHECK(record_has("last_outcome=aborted"));
    CHECK(!exists(lock));
    CHECK(close(pipes.go[1]) == 0 && close(pipes.seen[0]) == 0 && close(pipes.answered[0]) == 0);
}

/* --- fork() --------------------------------------------------------------------------- */

static void request_and_wait_in_the_child(void *arg)
{
    (void)arg;
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    CHECK(record_has("pid=%d", (int)getpid()));
    CHECK(virNodeSuspendWait() == 0); /* carried out by a worker of the child's own */
    CHECK_STR(root_read(STATE), "mem");
    CHECK_STR(root_read(WAKEALARM), "0");
}

static void child_forked_after_a_finished_request_has_its_own_carried_out(void)
{
    root_host_without_swap();
    use_fake_root("0");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    CHECK(virNodeSuspendWait() == 0);
    CHECK_STR(root_read(STATE), "mem");
    root_write(STATE, ""); /* the mask is cached: only the child's write will be seen here */
    WAIT_FOR(worker_is_parked);
    pid_t child = start_child(request_and_wait_in_the_child, NULL);
    reap_ok(child, "the child");
    CHECK_STR(root_read(STATE), "mem");
    CHECK(record_has("state=idle"));
    CHECK(record_has("last_outcome=back"));
}

static void request_then_wait_for_the_parents_request(void *arg)
{
    int *refused = arg;
    char aborted_by_the_parent[128];
    CHECK(close(refused[0]) == 0);
    /* The parent's request is the host's: in progress, so none of the child's own. */
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0) == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, IN_PROGRESS);
    signal_once(refused[1]);
    /* Waits for it, as any other process does, and gets how it ended. */
    CHECK(virNodeSuspendWait() == -1);
    snprintf(aborted_by_the_parent, sizeof(aborted_by_the_parent), ABORTED_BY, (int)getppid());
    CHECK_ERROR(VIR_ERR_OPERATION_ABORTED, VIR_FROM_NONE, aborted_by_the_parent);
}

static void child_forked_while_a_request_is_pending_makes_none_and_waits_for_the_parents(void)
{
    root_host_without_swap();
    use_fake_root("3600"); /* pending for the whole case; the shortest duration is 3650 s */
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0) == 0);
    WAIT_FOR(worker_is_parked);
    int refused[2];
    make_pipe(refused);
    pid_t child = start_child(request_then_wait_for_the_parents_request, refused);
    CHECK(close(refused[1]) == 0);
    CHECK(await_signal(refused[0]));
    watch(&child, 1);
    WAIT_FOR(watched_wait_on_the_request);
    /* The child's copy of the request, dropped at its first call, released neither lock
     * (it would not wait otherwise) nor alarm. */
    CHECK(record_has("state=pending"));
    CHECK(record_has("pid=%d", (int)getpid()));
    CHECK_STR(root_read(WAKEALARM), "1800003651");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0) == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, IN_PROGRESS);
    CHECK(!readable_now(refused[0])); /* the child is still waiting */

    /* The parent's request ends (aborted here): the child's wait returns with it. */
    char aborted_by_me[128];
    snprintf(aborted_by_me, sizeof(aborted_by_me), ABORTED_BY, (int)getpid());
    CHECK(virNodeSuspendAbort(0) == 0);
    CHECK(virNodeSuspendWait() == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_ABORTED, VIR_FROM_NONE, aborted_by_me);
    reap_ok(child, "the child");
    CHECK_STR(root_read(WAKEALARM), "0");
    CHECK(record_has("state=idle"));
    CHECK(record_has("last_outcome=aborted"));
    CHECK(close(refused[0]) == 0);
}

/* P, the owner: a request held in its worker's write to the full FIFO sys/power/state; a
 * child forked while the worker is blocked there (in the kernel, holding none of the
 * library's locks); then P stays until the case kills it. */
struct forked_while_suspending {
    int forked[2];   /* P: its child's pid */
    int seen[2];     /* the child: what its GetInfo returned */
    int answered[2]; /* the child: its virNodeSuspendWait's answer */
};

/* Whether this process's worker is blocked in its write to the FIFO sys/power/state. */
static bool worker_blocked_writing_the_state_fifo(void)
{
    return descriptors_open_on(root_path(STATE)) == 2 && worker_syscall() == SYS_write;
}

static void look_then_wait_for_the_parents_request(void *arg)
{
    struct forked_while_suspending *pipes = arg;
    CHECK(close(pipes->forked[1]) == 0);
    /* Its first call since the fork. */
    send_seen(pipes->seen[1], true);
    send_answer(pipes->answered[1], virNodeSuspendWait());
}

static void request_then_fork_while_suspending(void *arg)
{
    struct forked_while_suspending *pipes = arg;
    size_t filled = 0;
    CHECK(close(pipes->forked[0]) == 0 && close(pipes->seen[0]) == 0 && close(pipes->answered[0]) == 0);
    int fifo = open_the_state_fifo_full(&filled);
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    WAIT_FOR(request_is_suspending);
    WAIT_FOR(worker_blocked_writing_the_state_fifo);
    pid_t child = start_child(look_then_wait_for_the_parents_request, pipes);
    CHECK(close(pipes->seen[1]) == 0 && close(pipes->answered[1]) == 0);
    write_all(pipes->forked[1], &child, sizeof(child));
    (void)fifo; /* held open and full until this process is killed */
    for (;;)
        pause();
}

static void adopt_child(pid_t pid)
{
    size_t slot = 0;
    while (slot < sizeof(children) / sizeof(children[0]) && children[slot] > 0)
        slot++;
    CHECK(slot < sizeof(children) / sizeof(children[0]));
    children[slot] = pid;
}

static void child_forked_while_suspending_whose_parent_is_killed_sees_the_request_end(void)
{
    root_host_without_swap();
    use_fake_root("0");
    /* The child of P outlives it: it becomes this process's, to reap. */
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1L, 0L, 0L, 0L) == 0);
    struct fresh fresh;
    pid_t looker = start_fresh_process(&fresh);
    query_then_hold_suspends_on_a_fifo();

    struct forked_while_suspending pipes;
    make_pipe(pipes.forked);
    make_pipe(pipes.seen);
    make_pipe(pipes.answered);
    pid_t p = start_child(request_then_fork_while_suspending, &pipes);
    CHECK(close(pipes.forked[1]) == 0 && close(pipes.seen[1]) == 0 && close(pipes.answered[1]) == 0);
    pid_t c;
    CHECK(read_within(pipes.forked[0], &c, sizeof(c)) == sizeof(c));
    adopt_child(c);
    CHECK(request_is_suspending());
    CHECK(record_has("pid=%d", (int)p));
    char lock[300];
    snprintf(lock, sizeof(lock), "%s", lock_relative(record_value("lock")));

    struct seen seen = receive_seen(pipes.seen[0]);
    printf("# the child's descriptors on %s: %d before its first call, %d after it\n", lock,
           seen.lock_descriptors_before, seen.lock_descriptors_after);
    CHECK(seen.ret == 0);
    CHECK(seen.state == VIR_NODE_SUSPEND_STATE_SUSPENDING);
    CHECK(seen.owner == (int)p);
    CHECK(seen.wake_at == strtoll(fake_host_alarm(60), NULL, 10));
    CHECK(seen.lock_descriptors_before == 1); /* its copy of the worker's */
    int lock_descriptors_after_get_info = seen.lock_descriptors_after;

    /* Its wait waits for P's request. */
    answered_fd = pipes.answered[0];
    watch(&c, 1);
    WAIT_FOR(watched_wait_or_answered);
    CHECK(!readable_now(pipes.answered[0]));
    printf("# the child (pid %d) is asleep in virNodeSuspendWait, watching the record\n", (int)c);

    /* P dies while suspending: its lock goes with it, as the child's copy is gone. */
    int status;
    struct timespec killed_at;
    CHECK(kill(p, SIGKILL) == 0);
    CHECK(waitpid(p, &status, 0) == p);
    CHECK(clock_gettime(CLOCK_MONOTONIC, &killed_at) == 0);
    forget_child(p);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    struct answer waited = receive_answer(pipes.answered[0]);
    printf("# the child's virNodeSuspendWait: %d, code %d, %.3f s after P was reaped: %s\n", waited.ret,
           waited.code, seconds_between(&killed_at, &waited.at), waited.message);
    printf("# the record: %s\n", record_in_one_line());
    char abandoned[192];
    snprintf(abandoned, sizeof(abandoned),
             "process %d ended after the suspend started; its wake-up alarm was left armed", (int)p);
    CHECK(waited.ret == -1);
    CHECK(waited.pid == (int)c);
    CHECK(waited.code == VIR_ERR_OPERATION_FAILED);
    CHECK(waited.domain == VIR_FROM_NONE);
    CHECK_STR(waited.message, abandoned);
    CHECK(seconds_between(&killed_at, &waited.at) < 10);
    reap_ok(c, "P's child");
    CHECK(record_has("state=idle"));
    CHECK(record_has("last_outcome=abandoned"));
    CHECK(record_has("last_target=mem"));
    CHECK(record_has("last_error=%s", abandoned));
    CHECK(record_has("last_code=%d", VIR_ERR_OPERATION_FAILED));
    CHECK(!exists(lock));
    CHECK_STR(root_read(WAKEALARM), fake_host_alarm(60)); /* a suspending request keeps its alarm */

    /* A fresh process sees the host idle, its last request abandoned. */
    signal_once(fresh.go[1]);
    seen = receive_seen(fresh.seen[0]);
    CHECK(seen.ret == 0);
    CHECK(seen.state == VIR_NODE_SUSPEND_STATE_IDLE);
    CHECK(seen.owner == 0);
    CHECK(seen.last_outcome == VIR_NODE_SUSPEND_OUTCOME_ABANDONED);
    CHECK(seen.last_target == VIR_NODE_SUSPEND_TARGET_MEM);
    CHECK_STR(seen.last_error, abandoned);
    reap_ok(looker, "the fresh process");
    CHECK_STR(root_read(WAKEALARM), fake_host_alarm(60));
    close_fresh_pipes(&fresh);
    CHECK(close(pipes.forked[0]) == 0 && close(pipes.seen[0]) == 0 && close(pipes.answered[0]) == 0);
    /* Last, as the rest holds either way: the child let go of its copy of the lock at its
     * first call (docs/design.md, "fork()"), its GetInfo, not only at its wait. Else, had P died
     * before the child's wait, any other process's wait would wait for the child. */
    CHECK(lock_descriptors_after_get_info == 0);
}

int main(int argc, char **argv)
{
    static const struct harness_case cases[] = {
        {"4 processes x 8 threads racing on one host get one request; the losers' wait waits for it and gets its "
         "outcome",
         processes_and_threads_racing_on_one_host_get_one_request},
        {"another process's request in progress is refused and waited for, and its failure leaves an alarm "
         "someone else set",
         another_processs_request_is_refused_waited_for_and_its_failure_leaves_anothers_alarm},
        {"the request of a process killed during the delay is settled by the next process's first call",
         request_of_a_process_killed_during_the_delay_is_settled_by_the_next_process},
        {"a request made in one process is seen by virNodeSuspendGetInfo in another, pending then back",
         request_made_in_one_process_is_seen_by_get_info_in_another},
        {"abort from another process during the delay cancels the request, and a new one is then accepted",
         abort_from_another_process_during_the_delay_cancels_the_request},
        {"abort while suspending or with nothing in progress is refused and changes nothing",
         abort_while_suspending_or_with_nothing_in_progress_is_refused_and_changes_nothing},
        {"a third process's virNodeSuspendWait returns when the owner's request is over, with its outcome",
         third_processs_wait_returns_when_the_owners_request_is_over_with_its_outcome},
        {"virNodeSuspendGetInfo and virNodeSuspendAbort check their flags and arguments",
         get_info_and_abort_check_their_flags_and_arguments},
        {"an unprivileged process sees root's pending request and its virNodeSuspendWait waits until it is aborted",
         unprivileged_process_waits_for_roots_request_until_it_is_aborted},
        {"a child forked after a finished request has its own request carried out",
         child_forked_after_a_finished_request_has_its_own_carried_out},
        {"a child forked while a request is pending makes none of its own, and its wait waits for the parent's",
         child_forked_while_a_request_is_pending_makes_none_and_waits_for_the_parents},
        {"a child forked while its parent suspends, whose parent is then killed, sees the request end (abandoned, "
         "alarm kept)",
         child_forked_while_suspending_whose_parent_is_killed_sees_the_request_end},
    };
    size_t count = sizeof(cases) / sizeof(cases[0]);
    /* A child forked from a process whose worker thread runs (the last three cases) holds
     * what that thread allocated (its handle, name and start packet), with no thread left
     * to reach it from: memcheck and LeakSanitizer call it lost, though fork() did that,
     * not the library. Under them (meson passes --leak-checked), those cases are left out. */
    if (argc == 2 && strcmp(argv[1], "--leak-checked") == 0) {
        count -= 3;
        printf("# leak-checked: the cases that fork from a process with a worker thread are left out\n");
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--leak-checked]\n", argv[0]);
        return 2;
    }
    return harness_main(cases, count);
}
