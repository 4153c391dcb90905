#!/usr/bin/env bash
# test_completion.sh BUILD_DIR VERSION - the bash completion that
# `ingotctl completion bash` prints, driven the way bash drives it: the
# line is split into COMP_WORDS as readline does (blanks separate words; '='
# and ':' are words of their own), COMP_CWORD/COMP_LINE/COMP_POINT set, the
# function called, COMPREPLY checked.  Runs twice: on its own, and loaded
# after bash-completion's library (as the installed file is), when it is
# installed.
set -euo pipefail
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/ingotctl" completion bash >"$tmp/ingotctl.bash"
mkdir -p "$tmp/files/sub"
touch "$tmp/files/kernel.c" "$tmp/files/kernel.h"

cat >"$tmp/cases.bash" <<'EOF'
fails=0
# complete LINE: sets REPLY to the sorted COMPREPLY for the cursor at the end.
complete_line() {
	local line=$1 w rest
	COMP_WORDS=()
	for w in $line; do
		rest=$w
		while [[ $rest =~ ^([^=:]*)([=:])(.*)$ ]]; do
			[[ -n ${BASH_REMATCH[1]} ]] && COMP_WORDS+=("${BASH_REMATCH[1]}")
			COMP_WORDS+=("${BASH_REMATCH[2]}")
			rest=${BASH_REMATCH[3]}
		done
		[[ -n $rest ]] && COMP_WORDS+=("$rest")
	done
	[[ $line == *" " ]] && COMP_WORDS+=("")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE=$line
	COMP_POINT=${#line}
	COMPREPLY=()
	_ingotctl
	REPLY=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ')
	REPLY=${REPLY% }
}
# expect LINE WANTED: the completions are exactly WANTED (sorted words).
expect() {
	complete_line "$1"
	local want
	want=$(tr ' ' '\n' <<<"$2" | sed '/^$/d' | sort | tr '\n' ' ')
	want=${want% }
	if [[ $REPLY != "$want" ]]; then
		echo "FAIL ($MODE): '$1' gave '$REPLY', expected '$want'" >&2
		fails=$((fails + 1))
	fi
}
# has LINE WORD...: the completions include each WORD; lacks: none of them.
has() {
	local line=$1 w
	shift
	complete_line "$line"
	for w; do
		[[ " $REPLY " == *" $w "* ]] || { echo "FAIL ($MODE): '$line' lacks $w (got '$REPLY')" >&2; fails=$((fails + 1)); }
	done
}
lacks() {
	local line=$1 w
	shift
	complete_line "$line"
	for w; do
		[[ " $REPLY " != *" $w "* ]] || { echo "FAIL ($MODE): '$line' offers $w" >&2; fails=$((fails + 1)); }
	done
}

expect "ingotctl " "status target job node member events settings snapshot pki help completion"
expect "ingotctl jo" "job"
expect "ingotctl job " "submit get list cancel retry events watch logs fetch"
expect "ingotctl job su" "submit"
expect "ingotctl member tr" "transfer-leadership"
expect "ingotctl --endpoints 127.0.0.1:7401 job li" "list"
expect "ingotctl -o json node " "list drain undrain forget"
expect "ingotctl job submit --ta" "--target"
has "ingotctl job submit --" --target --priority --param --request-id --endpoints --timeout
lacks "ingotctl job submit --" --stale --state --role
has "ingotctl status --" --stale --endpoints
lacks "ingotctl target delete --" --stale
expect "ingotctl job list --state " "queued assigned running succeeded failed cancelled"
expect "ingotctl job list --state=ru" "running"
expect "ingotctl -o " "table json"
expect "ingotctl --output=j" "json"
expect "ingotctl member add 4 --role " "voter standby spare"
expect "ingotctl member demote 3 --role " "standby spare"
expect "ingotctl job submit --target " ""
expect "ingotctl --timeout " ""
expect "ingotctl help " "status target job node member events settings snapshot pki help completion"
expect "ingotctl help jo" "job"
expect "ingotctl help member " "list add promote demote remove transfer-leadership"
expect "ingotctl completion " "bash"
expect "ingotctl snapshot " "save"
expect "ingotctl snapshot save $FILES/ker" "$FILES/kernel.c $FILES/kernel.h"
expect "ingotctl target apply $FILES/ker" "$FILES/kernel.c $FILES/kernel.h"
expect "ingotctl job submit --target cc $FILES/kernel." "$FILES/kernel.c $FILES/kernel.h"
expect "ingotctl job fetch 1 $FILES/s" "$FILES/sub"
expect "ingotctl job get 1 " ""
expect "ingotctl pki " "init issue"
expect "ingotctl pki init --" "--dir --days --force --help"
has "ingotctl pki issue node --" --id --address --dir --days --force
expect "ingotctl --cacert $FILES/ker" "$FILES/kernel.c $FILES/kernel.h"
expect "ingotctl status --key=$FILES/s" "$FILES/sub"
expect "ingotctl pki init --dir $FILES/" "$FILES/sub"
echo "$MODE: $fails failure(s)"
exit "$((fails > 0))"
EOF

status=0
MODE=plain FILES=$tmp/files bash -c "source '$tmp/ingotctl.bash'; source '$tmp/cases.bash'" ||
	status=1
bc=/usr/share/bash-completion/bash_completion
if [ -r "$bc" ]; then
	MODE=bash-completion FILES=$tmp/files bash -c \
		"source '$bc'; source '$tmp/ingotctl.bash'; source '$tmp/cases.bash'" || status=1
else
	echo "bash-completion not installed: checked without its library only" \
		"(scripts/setup installs it)"
fi
exit "$status"
