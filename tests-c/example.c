/* README's C example: a C program using the library as an outside user does. */
#include <stdio.h>
#include <virnodesuspend.h>

int main(void)
{
    unsigned int mask;

    if (virNodeSuspendGetTargetMask(&mask) < 0 || !(mask & (1u << VIR_NODE_SUSPEND_TARGET_MEM)) ||
        virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) < 0)
        fprintf(stderr, "cannot suspend: %s\n", virNodeSuspendGetLastErrorMessage());
    else if (virNodeSuspendWait() < 0) /* the sleep runs in a thread of this process */
        fprintf(stderr, "suspend failed: %s\n", virNodeSuspendGetLastErrorMessage());
    else
        return printf("slept in RAM and woke up\n") < 0;
    return 1;
}
