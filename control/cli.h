/* cli.h - entry points of the sluice subcommands (see main.c). */
#ifndef SLUICE_CONTROL_CLI_H
#define SLUICE_CONTROL_CLI_H

int cmd_serve(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_topics(int argc, char **argv);  /* cli_topics.c */
int cmd_configs(int argc, char **argv); /* cli_configs.c */
int cmd_offsets(int argc, char **argv); /* cli_offsets.c */
int cmd_groups(int argc, char **argv);  /* cli_groups.c */

#endif
