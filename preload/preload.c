/*
 * What libvirt's daemons preload (the drop-ins of libvirt-daemon-driver-nodesuspend): the
 * two functions libvirt's QEMU driver calls from libvirt's private symbols (libvirt 9.0's
 * src/libvirt_private.syms, under util/virnodesuspend.h: virNodeSuspend and
 * virNodeSuspendGetTargetMask), defined unversioned so that the daemon's calls come here
 * instead of to libvirt's own, and forwarded to libvirnodesuspend.so.0, which the first
 * call loads.
 *
 * Why not preload the library itself: the daemon passes LD_PRELOAD on to every program it
 * starts (each guest's QEMU, dnsmasq, helpers), none of which calls it, and the Rust
 * library costs each of them 28 kB of private memory (the loader relocates 7 pages of its
 * and the standard library's data) and 0.06-0.09 ms per start. This object maps a few kB
 * and needs nothing but libc; the library is mapped only in a process that calls it.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <virnodesuspend.h>

/* By its SONAME, as a program linked with it would find it: the library the system's
 * loader configuration names, the same one the tool and the Python binding use. */
#define LIBRARY "libvirnodesuspend.so.0"

typedef int (*suspend_function)(unsigned int target, unsigned long long duration, unsigned int flags);
typedef int (*mask_function)(unsigned int *bitmask);
/* libvirt's src/util/virerror.h. */
typedef void (*raise_error_full_function)(const char *filename, const char *funcname, size_t linenr,
                                          int domain, int code, int level, const char *str1,
                                          const char *str2, const char *str3, int int1, int int2,
                                          const char *fmt, ...);

static pthread_once_t loaded = PTHREAD_ONCE_INIT;
static suspend_function real_suspend;
static mask_function real_mask;
/* Why the library could not be loaded, for every call's error (dlerror's text lasts only
 * until the thread's next dl call). */
static char load_error[512];

/* dlsym's answer as a function pointer (ISO C has no cast between the two; POSIX
 * guarantees they have the same representation). */
static void *symbol(void *handle, const char *name, void *function, size_t size)
{
    void *address = dlsym(handle, name);
    memcpy(function, &address, size);
    return address;
}

static void load(void)
{
    /* RTLD_LOCAL: the library's symbols stay out of the process's global scope, where
     * lookups keep finding the shim's and libvirt's. */
    void *library = dlopen(LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL || symbol(library, "virNodeSuspend", &real_suspend, sizeof(real_suspend)) == NULL ||
        symbol(library, "virNodeSuspendGetTargetMask", &real_mask, sizeof(real_mask)) == NULL) {
        snprintf(load_error, sizeof(load_error), "cannot load the node-suspend library: %s", dlerror());
        real_suspend = NULL;
        real_mask = NULL;
    }
}

/* The library could not be loaded: the call fails, with libvirt's error where libvirt is
 * in the process (as the library raises its own), and is never passed on to libvirt's own
 * code, which would answer differently. libvirt 9.0 corrupts its heap when an error is
 * raised before virInitialize, which every libvirt call runs first: so does this. */
static int fail(const char *function)
{
    int (*initialize)(void);
    raise_error_full_function raise_error_full;
    if (symbol(RTLD_DEFAULT, "virInitialize", &initialize, sizeof(initialize)) == NULL || initialize() < 0 ||
        symbol(RTLD_DEFAULT, "virRaiseErrorFull", &raise_error_full, sizeof(raise_error_full)) == NULL)
        return -1;
    /* As libvirt's virReportError(VIR_ERR_INTERNAL_ERROR, "%s", info) in `function`, and the
     * library's own errors. */
    static const char format[] = "internal error: %s";
    raise_error_full(__FILE__, function, __LINE__, VIR_FROM_NONE, VIR_ERR_INTERNAL_ERROR, VIR_ERR_ERROR,
                     format, load_error, NULL, -1, -1, format, load_error);
    return -1;
}

int virNodeSuspend(unsigned int target, unsigned long long duration, unsigned int flags)
{
    pthread_once(&loaded, load);
    if (real_suspend == NULL)
        return fail(__func__);
    return real_suspend(target, duration, flags);
}

int virNodeSuspendGetTargetMask(unsigned int *bitmask)
{
    pthread_once(&loaded, load);
    if (real_mask == NULL) {
        /* As the library and libvirt leave it when they fail. */
        if (bitmask != NULL)
            *bitmask = 0;
        return fail(__func__);
    }
    return real_mask(bitmask);
}
