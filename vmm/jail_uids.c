/* Worker uids (jail_uids.h): a bitmap over the configured range. */
#include "vmm/jail_uids.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int jail_uids_init(struct jail_uids *u, uid_t first, uint32_t count)
{
	memset(u, 0, sizeof(*u));
	if (!count || first == 0 ||
	    (uint64_t)first + count - 1 >= (uint64_t)(uid_t)-1)
		return -EINVAL;
	u->map = calloc((count + 7) / 8, 1);
	if (!u->map)
		return -ENOMEM;
	u->first = first;
	u->count = count;
	return 0;
}

void jail_uids_free(struct jail_uids *u)
{
	free(u->map);
	memset(u, 0, sizeof(*u));
}

static bool held(const struct jail_uids *u, uint32_t i)
{
	return u->map[i / 8] & (1u << (i % 8));
}

int jail_uid_get(struct jail_uids *u, uid_t *uid, char *err, size_t errlen)
{
	if (!u->map || u->used >= u->count) {
		if (err)
			snprintf(err, errlen, "no worker uid free: all %u of "
				 "[vm] worker_uids are held",
				 (unsigned)u->count);
		return -EAGAIN;
	}
	for (uint32_t k = 0; k < u->count; k++) {
		uint32_t i = (u->next + k) % u->count;

		if (held(u, i))
			continue;
		u->map[i / 8] |= (uint8_t)(1u << (i % 8));
		u->used++;
		u->next = (i + 1) % u->count;
		*uid = u->first + i;
		return 0;
	}
	return -EAGAIN;		/* cannot be: used < count */
}

int jail_uid_put(struct jail_uids *u, uid_t uid)
{
	uint32_t i = uid - u->first;

	if (!u->map || uid < u->first || i >= u->count || !held(u, i))
		return -ENOENT;
	u->map[i / 8] &= (uint8_t)~(1u << (i % 8));
	u->used--;
	return 0;
}

static bool inside(uint64_t id, uid_t first, uint32_t count)
{
	return id >= first && id - first < count;
}

int jail_uids_check(const char *passwd, const char *group, uid_t first,
		    uint32_t count, char *err, size_t errlen)
{
	unsigned long last = (unsigned long)first + count - 1;
	FILE *f = fopen(passwd, "re");
	struct passwd *pw;
	struct group *gr;
	int r = 0;

	/* The files themselves, not NSS: an account in LDAP is the
	 * operator's to keep out of the range. */
	if (!f) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", passwd, strerror(errno));
		return r;
	}
	while (!r && (pw = fgetpwent(f)))
		if (inside(pw->pw_uid, first, count) ||
		    inside(pw->pw_gid, first, count)) {
			snprintf(err, errlen, "%s: user %.32s has uid %u (gid "
				 "%u), inside [vm] worker_uids %u-%lu; pick a "
				 "range no account uses", passwd, pw->pw_name,
				 (unsigned)pw->pw_uid, (unsigned)pw->pw_gid,
				 (unsigned)first, last);
			r = -EEXIST;
		}
	fclose(f);
	if (r)
		return r;
	f = fopen(group, "re");
	if (!f) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", group, strerror(errno));
		return r;
	}
	while (!r && (gr = fgetgrent(f)))
		if (inside(gr->gr_gid, first, count)) {
			snprintf(err, errlen, "%s: group %.32s has gid %u, "
				 "inside [vm] worker_uids %u-%lu; pick a range "
				 "no group uses", group, gr->gr_name,
				 (unsigned)gr->gr_gid, (unsigned)first, last);
			r = -EEXIST;
		}
	fclose(f);
	return r;
}
