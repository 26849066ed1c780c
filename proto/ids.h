/*
 * ids.h - the rules for stream IDs and snapshot names, shared by the
 * daemon's every layer and by libinfini.  It includes nothing of protobuf,
 * so the layers below the daemon's rpc layer (the scheduler and the store)
 * can check a name read from a file without seeing any wire message.
 */
#ifndef WIRE_IDS_H
#define WIRE_IDS_H

#include <stdbool.h>

#define WIRE_ID_MAX 128

/* wire_valid_id: 1..128 characters of [A-Za-z0-9._:-] (stream IDs). */
bool wire_valid_id(const char *id);
/* wire_valid_name: a snapshot name: a valid ID not starting with '.'
 * (temp files of the snapshot directory start with '.'). */
bool wire_valid_name(const char *name);

#endif
