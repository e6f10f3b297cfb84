/* broker.h - boot and run the broker from a finished config; returns the exit code. */
#ifndef SLUICE_CONTROL_BROKER_H
#define SLUICE_CONTROL_BROKER_H

#include "control/config.h"

int broker_run(const struct config *cfg);

#endif
