/* cli.h - entry points of the sluice subcommands (see main.c). */
#ifndef SLUICE_CONTROL_CLI_H
#define SLUICE_CONTROL_CLI_H

int cmd_serve(int argc, char **argv);
int cmd_check(int argc, char **argv);

#endif
