/* libFuzzer harness: the config loader (cfg_load_string), input as the
 * file's text. A load that succeeds must hand back a valid configuration;
 * one that fails must say why in one printable line "NAME:LINE: reason"
 * or "NAME: reason", and leave cfg zeroed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

#define NAME "fuzz.ini"

static int zeroed(const struct cfg *cfg)
{
	static const struct cfg zero;

	return memcmp(cfg, &zero, sizeof(zero)) == 0;
}

static void check_ok(const struct cfg *c)
{
	if (!c->path || strcmp(c->path, NAME) != 0 || !c->server.listen_host ||
	    !c->server.listen_port || !c->server.state_dir ||
	    !c->server.state_dir[0] || !c->server.host_key ||
	    !c->server.host_key[0] || !c->server.authorized_keys ||
	    !c->server.authorized_keys[0] || !c->server.max_auth_tries ||
	    c->server.max_auth_tries > 100 || !c->server.login_grace_time ||
	    c->server.login_grace_time > 3600 || !c->template.kernel ||
	    !c->template.kernel[0] || !c->template.initrd ||
	    !c->template.initrd[0] || !c->template.cmdline ||
	    c->template.memory_mb < 64 || c->template.memory_mb > 3072 ||
	    c->template.vcpus != 1 || !c->vm.max_vms ||
	    c->vm.max_vms > 100000 || c->vm.reap_timeout < c->vm.detach_timeout)
		abort();
}

static void check_err(const char *err)
{
	size_t n = strlen(err);

	if (strncmp(err, NAME ":", strlen(NAME ":")) != 0 ||
	    n <= strlen(NAME ":"))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[CFG_ERRLEN];
	struct cfg cfg;
	int r;

	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = 0;
	memset(err, 0, sizeof(err));
	r = cfg_load_string(&cfg, NAME, text, err, sizeof(err));
	if (r == 0) {
		check_ok(&cfg);
	} else {
		if (r != -EINVAL && r != -ENOMEM)
			abort();
		if (!zeroed(&cfg))
			abort();
		check_err(err);
	}
	cfg_free(&cfg);
	free(text);
	return 0;
}
