/* Reading /proc about other processes (VM workers). */
#ifndef COMMON_PROC_H
#define COMMON_PROC_H

#include <sys/types.h>

/* A field of /proc/PID/smaps_rollup ("Private_Dirty", "Anonymous"...) in
 * KiB; 0 if the process or the field is not there. */
long proc_smaps_kib(pid_t pid, const char *field);

#endif
