#include "common/proc.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long proc_smaps_fd_kib(int fd, const char *field)
{
	char buf[4096];
	size_t fl = strlen(field);
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n < 0)
		return -1;
	buf[n] = 0;
	for (char *l = buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l)
		if (strncmp(l, field, fl) == 0 && l[fl] == ':')
			return strtol(l + fl + 1, NULL, 10);
	return 0;
}

long proc_smaps_kib(pid_t pid, const char *field)
{
	char path[64];
	long v;
	int fd;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	v = proc_smaps_fd_kib(fd, field);
	close(fd);
	return v;
}
