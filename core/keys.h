/*
 * API key management through the auth plugin that owns credentials (the first auth
 * instance with a `manage` method): the `sbxd keys ...` operator command and the admin
 * endpoints under /api/v1/keys.
 */
#ifndef SBXD_KEYS_H
#define SBXD_KEYS_H

/* `sbxd keys create|list|get|revoke ...`; argv[0] is "keys". Returns the exit status. */
int keys_cli_main(int argc, char **argv);

#endif
