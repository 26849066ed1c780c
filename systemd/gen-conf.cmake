# gen-conf.cmake - writes OUT, the example infinid.conf, from the settings
# table that `INFINID --help` prints: documentation lines stay, each
# "key = default" line is commented out.
execute_process(COMMAND ${INFINID} --help OUTPUT_VARIABLE help
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${INFINID} --help failed: ${rc}")
endif()
string(FIND "${help}" "\nsettings:\n" at)
if(at LESS 0)
  message(FATAL_ERROR "no settings section in `infinid --help`")
endif()
math(EXPR at "${at} + 11")
string(SUBSTRING "${help}" ${at} -1 table)
string(REGEX REPLACE "(^|\n)([a-z_]+ = )" "\\1#\\2" table "${table}")
string(REGEX REPLACE " +\n" "\n" table "${table}")
file(WRITE ${OUT} "# /etc/infinid/infinid.conf - settings of infinid(8); see infinid.conf(5).
#
# One \"key = value\" per line; '#' starts a comment.  Each key below is
# shown commented out at its default.  Command-line flags of the same names
# (--max-queue 32) override this file.  `systemctl reload infinid` (SIGHUP)
# applies log_level, max_queue, max_request_tokens, max_generate,
# poll_max_ms, generate_idle_s, autosnapshot_segments and
# autosnapshot_interval_s at once; the others need a restart.

${table}")
