#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make install (into a DESTDIR): the binary runs, `man rawpunch` shows one section per command (the same
# commands `rawpunch --help` lists, each with its own --help text), and the bash completion offers the
# commands and a command's long options. No lab needed; nothing is installed outside the DESTDIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/natlab-lib.sh
B=${BUILD:-build}
D=$(mktemp -d /tmp/rp-install.XXXXXX)
trap 'rm -rf "$D"' EXIT
make --no-print-directory -s BUILD="$B" install DESTDIR="$D" PREFIX=/usr/local >"$D/install.log" 2>&1 ||
	fail "make install: $(cat "$D/install.log")"
bin=$D/usr/local/bin/rawpunch
[ -x "$bin" ] || fail "no $bin"
"$bin" --version | grep -q '^rawpunch ' || fail "installed binary does not run"
mapfile -t cmds < <("$bin" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
[ ${#cmds[@]} -ge 6 ] || fail "rawpunch --help lists ${#cmds[@]} commands"
page=$(MANPATH="$D/usr/local/share/man" MANWIDTH=120 man rawpunch 2>"$D/man.err") || fail "man rawpunch: $(cat "$D/man.err")"
for c in "${cmds[@]}"; do
	C=$(tr a-z A-Z <<<"$c")
	grep -q "^RAWPUNCH $C\$" <<<"$page" || fail "man page has no section for $c"
	first=$("$bin" "$c" --help | sed -n '1s/^ *//p')
	grep -qF -- "$first" <<<"$page" || fail "man page section $c lacks its --help text ('$first')"
done
ok "man rawpunch: ${#cmds[@]} command sections, each with its --help text"
# completion: source it and ask as bash would
comp=$D/usr/local/share/bash-completion/completions/rawpunch
[ -f "$comp" ] || fail "no completion installed"
out=$(PATH="$D/usr/local/bin:$PATH" bash -c '
	source "$1"
	COMP_WORDS=(rawpunch p); COMP_CWORD=1; _rawpunch; echo "cmds: ${COMPREPLY[*]}"
	COMP_WORDS=(rawpunch punch --rel); COMP_CWORD=2; _rawpunch; echo "opts: ${COMPREPLY[*]}"
	COMP_WORDS=(rawpunch watch --re); COMP_CWORD=2; _rawpunch; echo "watch: ${COMPREPLY[*]}"' _ "$comp")
grep -q '^cmds: .*probe' <<<"$out" && grep -q '^cmds: .*punch' <<<"$out" || fail "completion of commands: $out"
grep -q '^watch: .*--read' <<<"$out" || fail "completion of watch options: $out"
ok "bash completion: commands and options ($(tr '\n' ';' <<<"$out"))"
make --no-print-directory -s BUILD="$B" uninstall DESTDIR="$D" PREFIX=/usr/local >/dev/null
[ -z "$(find "$D/usr" -type f)" ] || fail "uninstall left: $(find "$D/usr" -type f)"
ok "uninstall removes all three"
echo PASS
