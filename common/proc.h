/* Reading /proc about other processes (VM workers). */
#ifndef COMMON_PROC_H
#define COMMON_PROC_H

#include <sys/types.h>

/* A field of /proc/PID/smaps_rollup ("Private_Dirty", "Anonymous"...) in
 * KiB; 0 if the field is not there or pid <= 0, -1 if the file cannot
 * be read (no such process, or not ours to read). */
long proc_smaps_kib(pid_t pid, const char *field);
/* The same from an open smaps_rollup (read again from its start). */
long proc_smaps_fd_kib(int fd, const char *field);

#endif
