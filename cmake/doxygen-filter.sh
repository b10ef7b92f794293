#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Doxygen INPUT_FILTER (cmake/Doxyfile.in): turn the headers' comment conventions into
# Doxygen commands, so the header comments stay the one source of the reference.
#   /** fanout/x.h - text       -> \file + text             (the page of the header)
#    * fo_name() - text          -> text                     (the brief: up to the first period)
#    * @arg: text                -> \param arg text
#    * Returns: text             -> \return text
#    * Ownership: / Threads: ... -> a titled paragraph
#    text   @arg: text          -> two lines, each a \param (two parameters on one line)
#    @word inside a sentence     -> \a word (an argument name)
exec sed -E \
	-e 's~^ \* fanout/[a-z_]+\.h - ~ * \\file\n * ~' \
	-e 's~^ \* (fo|FO)_[A-Za-z0-9_]+(\(\))? - ~ * ~' \
	-e 's~^/\*\* (fo|FO)_[A-Za-z0-9_]+(\(\))? - ~/** ~' \
	-e 's~^ \* @([A-Za-z_][A-Za-z0-9_.]*): ~ * \\param \1 ~' \
	-e 's~^ \* Returns?: ~ * \\return ~' \
	-e 's~^ \* (Ownership|Threads|Blocking|Progress|Errors|Lifetime|Cost|Note|Example): *~ * \\par \1:\n * ~' \
	-e 's~^( \* .*[^ ]) {2,}@([A-Za-z_][A-Za-z0-9_]*): ~\1\n * \\param \2 ~' \
	-e 's~^( \* .*[^ ]) {2,}@([A-Za-z_][A-Za-z0-9_]*): ~\1\n * \\param \2 ~' \
	-e 's~([^A-Za-z0-9_\\])@([A-Za-z_][A-Za-z0-9_]*)~\1\\a \2~g' \
	"$1"
