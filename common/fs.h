/* Files in directories another uid can write (the workers' own, suspended
 * VMs): opened by root without following what may have been planted. */
#ifndef COMMON_FS_H
#define COMMON_FS_H

/* name, one component of dfd, without following any symbolic link
 * (openat2 RESOLVE_NO_SYMLINKS; O_NOFOLLOW before Linux 5.6, the same for
 * one component); O_CLOEXEC is added to flags. fd, or -errno: -ELOOP for
 * a link, -EINVAL for "", ".", ".." or a name with a '/'. */
int fs_open_beneath(int dfd, const char *name, int flags);

#endif
