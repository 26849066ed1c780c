/*
 * ids.c - stream IDs and snapshot names (ids.h): what both the daemon and
 * libinfini accept, so a name one side takes is never refused by the other.
 */
#include <stddef.h>

#include "ids.h"

/* id_char: is c one of [A-Za-z0-9._:-]? */
static bool
id_char(char c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
	    c == '-');
}

bool
wire_valid_name(const char *name)
{
	return (wire_valid_id(name) && name[0] != '.');
}

bool
wire_valid_id(const char *id)
{
	size_t n = 0;

	if (id == NULL)
		return (false);
	for (; id[n] != '\0'; n++) {
		if (n >= WIRE_ID_MAX || !id_char(id[n]))
			return (false);
	}
	return (n > 0);
}
