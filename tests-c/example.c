/* README's example: a C program using the library as an outside user does. */
#include <stdio.h>
#include <virnodesuspend.h>

int main(void)
{
    unsigned int mask;

    if (virNodeSuspendGetTargetMask(&mask) < 0 || !(mask & (1u << VIR_NODE_SUSPEND_TARGET_MEM)) ||
        virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) < 0) {
        fprintf(stderr, "cannot suspend: %s\n", virNodeSuspendGetLastErrorMessage());
        return 1;
    }
    printf("suspending to RAM; the RTC wakes the host in 60 s\n");
    return 0;
}
