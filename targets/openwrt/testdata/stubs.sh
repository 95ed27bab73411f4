# Host stand-ins for the parts of OpenWrt that mtcagent's init script uses:
# /lib/functions.sh (config_load, config_get, config_foreach, ...) with the
# same semantics as OpenWrt's, and /lib/functions/procd.sh, whose calls are
# logged one per line (name and arguments separated by tabs) to $PROCD_LOG.
# config_load reads $UCI_CONFIG_DIR/PACKAGE, which is in UCI's export syntax
# (as the real one gets from `uci export`).

append() {
	local var="$1" value="$2" sep="${3:- }"
	eval "export -- \"$var=\${$var:+\${$var}\${value:+\$sep}}\$value\""
}

config_cb() { return 0; }
option_cb() { return 0; }
list_cb() { return 0; }

package() { return 0; }

config() {
	local cfgtype="$1" name="$2"
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	name="${name:-cfg$CONFIG_NUM_SECTIONS}"
	append CONFIG_SECTIONS "$name"
	CONFIG_SECTION="$name"
	config_set "$CONFIG_SECTION" TYPE "$cfgtype"
	config_cb "$cfgtype" "$name"
}

option() {
	local varname="$1"
	shift
	config_set "$CONFIG_SECTION" "$varname" "$*"
	option_cb "$varname" "$*"
}

list() {
	local len
	config_get len "$CONFIG_SECTION" "${1}_LENGTH" 0
	[ "$len" = 0 ] && append CONFIG_LIST_STATE "${CONFIG_SECTION}_${1}"
	len=$((len + 1))
	config_set "$CONFIG_SECTION" "${1}_ITEM$len" "$2"
	config_set "$CONFIG_SECTION" "${1}_LENGTH" "$len"
	append "CONFIG_${CONFIG_SECTION}_${1}" "$2" "${LIST_SEP:- }"
	list_cb "$1" "$*"
}

config_set() {
	export "CONFIG_${1}_${2}=${3}"
}

config_get() {
	case "$2${3:-$1}" in
	*[!A-Za-z0-9_]*) : ;;
	*)
		case "$3" in
		"") eval echo "\"\${CONFIG_${1}_${2}:-\${4}}\"" ;;
		*) eval export -- "${1}=\${CONFIG_${2}_${3}:-\${4}}" ;;
		esac
		;;
	esac
}

config_get_bool() {
	local _tmp
	config_get _tmp "$2" "$3" "$4"
	case "$_tmp" in
	1 | on | true | yes | enabled) _tmp=1 ;;
	0 | off | false | no | disabled) _tmp=0 ;;
	*) _tmp="$4" ;;
	esac
	export "$1=$_tmp"
}

config_foreach() {
	local ___function="$1"
	[ "$#" -ge 1 ] && shift
	local ___type="$1"
	[ "$#" -ge 1 ] && shift
	local section cfgtype
	[ -z "$CONFIG_SECTIONS" ] && return 0
	for section in ${CONFIG_SECTIONS}; do
		config_get cfgtype "$section" TYPE
		[ -n "$___type" ] && [ "x$cfgtype" != "x$___type" ] && continue
		eval "$___function \"\$section\" \"\$@\""
	done
}

config_list_foreach() {
	[ "$#" -ge 3 ] || return 0
	local section="$1"
	shift
	local option="$1"
	shift
	local function="$1"
	shift
	local val len c=1
	config_get len "${section}" "${option}_LENGTH"
	[ -z "$len" ] && return 0
	while [ $c -le "$len" ]; do
		config_get val "${section}" "${option}_ITEM$c"
		eval "$function \"\$val\" \"\$@\""
		c="$((c + 1))"
	done
}

config_load() {
	local VAR
	for VAR in $CONFIG_LIST_STATE; do
		export "CONFIG_${VAR}="
		export "CONFIG_${VAR}_LENGTH="
	done
	CONFIG_LIST_STATE=
	CONFIG_SECTIONS=
	CONFIG_NUM_SECTIONS=0
	CONFIG_SECTION=
	[ -f "$UCI_CONFIG_DIR/$1" ] || return 1
	. "$UCI_CONFIG_DIR/$1"
	${CONFIG_SECTION:+config_cb}
	return 0
}

procd_log() {
	local IFS='	'
	printf '%s\n' "$*" >>"$PROCD_LOG"
}
procd_open_instance() { procd_log procd_open_instance "$@"; }
procd_set_param() { procd_log procd_set_param "$@"; }
procd_append_param() { procd_log procd_append_param "$@"; }
procd_close_instance() { procd_log procd_close_instance "$@"; }
procd_add_reload_trigger() { procd_log procd_add_reload_trigger "$@"; }
