/* broker.c - boot: topology, shards, listeners, control loop. The shard runtime is the
 * subject of the shard/network issue; until it lands, serve refuses to start. */
#include "control/broker.h"

#include <stdio.h>

int broker_run(const struct config *cfg) {
    (void)cfg;
    fprintf(stderr, "sluice serve: the shard runtime is not built yet\n");
    return 1;
}
