/* libFuzzer harness: the authorized_keys parser (sshd_authkeys_match),
 * input as the file's text, against one fixed ed25519 key. The seed
 * corpus holds that key's line, so matching lines are explored too. */
#include <stdlib.h>

#include "common/log.h"
#include "sshd/authkeys.h"

/* The public half of a throwaway key made for this harness. */
#define KEY_B64 "AAAAC3NzaC1lZDI1NTE5AAAAIDC1W2PDcuBzynL7yPZtzkhjDWbcuudcnu+GXv6+3VGW"

static ssh_key key;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init("fuzz", LOG_ERR);	/* every bad line is logged */
	if (ssh_pki_import_pubkey_base64(KEY_B64, SSH_KEYTYPE_ED25519, &key) !=
	    SSH_OK)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sshd_authkeys_match((const char *)data, size, "fuzz", key);
	return 0;
}
