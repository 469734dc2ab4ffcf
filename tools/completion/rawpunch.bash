# SPDX-License-Identifier: MIT
# bash completion for rawpunch: commands from 'rawpunch --help', options from 'rawpunch CMD --help'
# (asked at completion time, so new options complete without touching this file).
_rawpunch() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} rp=${COMP_WORDS[0]} cmd
	if [ "$COMP_CWORD" -eq 1 ]; then
		mapfile -t COMPREPLY < <(compgen -W "$("$rp" --help 2>/dev/null |
			awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')" -- "$cur")
		return 0
	fi
	cmd=${COMP_WORDS[1]}
	case $prev in
	--secret-file | --relay-secret-file | --report | --pcap | --write | -w | --read | -r | --plot | --natinfo)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return 0 ;;
	--user | -Z)
		mapfile -t COMPREPLY < <(compgen -u -- "$cur")
		return 0 ;;
	--iface | -i)
		mapfile -t COMPREPLY < <(compgen -W "$(ls /sys/class/net 2>/dev/null) any" -- "$cur")
		return 0 ;;
	esac
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$("$rp" "$cmd" --help 2>/dev/null |
			grep -oE -- '(^|[[ ,|])--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z0-9-]+' | sort -u)" -- "$cur")
	fi
	return 0
}
complete -F _rawpunch rawpunch
