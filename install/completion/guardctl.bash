# bash completion for guardctl (mailguard). Installed as
# $datadir/bash-completion/completions/guardctl, which bash-completion loads on first use;
# without bash-completion, source this file from ~/.bashrc.
#
# Commands and options are listed here (tests/integration/test_completion.py checks them
# against `guardctl COMMAND --help`); program ids and paths come from the running guardd
# through `guardctl --json programs`.

# The programs guardd knows, as ids then paths, one a line. Quiet and quick when guardd
# (or the bus) is not there: guardctl then fails at once, and `timeout` bounds a bus that
# accepts the connection but does not answer.
_guardctl_programs() {
    local guardctl=$1 line
    local -a ids=() paths=()
    # `--json programs` prints nlohmann::json's dump(2): in each object one key a line,
    # `    "id": 7,` and `    "path": "/usr/bin/msmtp",`; its "versions" (ids of older
    # contents, which name the same program) are indented deeper and left out.
    while IFS= read -r line; do
        if [[ $line =~ ^\ {4}\"id\":\ ([0-9]+),?$ ]]; then
            ids+=("${BASH_REMATCH[1]}")
        elif [[ $line =~ ^\ {4}\"path\":\ \"(.*)\",?$ ]]; then
            line=${BASH_REMATCH[1]}
            line=${line//\\\"/\"}
            paths+=("${line//\\\\/\\}")
        fi
    done < <(timeout 2 "$guardctl" --json programs 2>/dev/null </dev/null)
    ((${#ids[@]} + ${#paths[@]})) || return 0
    printf '%s\n' "${ids[@]}" "${paths[@]}"
}

_guardctl() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local guardctl=${COMP_WORDS[0]}
    [[ $guardctl == "~/"* ]] && guardctl=$HOME/${guardctl#\~/}
    COMPREPLY=()

    local commands="status programs attempts approve deny forget rules alerts release bulk watch firewall audit backscatter outside"
    local firewall_commands="status enable disable allow remove local-subnets probes"

    # The command (and the firewall's or alerts' subcommand) is the first word that is
    # neither an option nor an option's value; the words after it are its arguments.
    local i word cmd="" sub="" positional=0 value_next=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if ((value_next)); then
            value_next=0
        elif [[ $word == -* ]]; then
            case $word in
                --limit | --before | --program | --verdict | --since | --until | --script | \
                    --allow-env | --only-to | --user | --recipients | --hours | --count | --domain) value_next=1 ;;
            esac
        elif [[ -z $cmd ]]; then
            cmd=$word
        elif [[ ($cmd == firewall || $cmd == alerts) && -z $sub ]]; then
            sub=$word
        else
            ((positional++))
        fi
    done

    case $prev in
        --verdict)
            mapfile -t COMPREPLY < <(compgen -W "allow hold reject" -- "$cur")
            return 0
            ;;
        --program)
            mapfile -t COMPREPLY < <(compgen -W "$(_guardctl_programs "$guardctl" | grep -E '^[0-9]+$')" -- "$cur")
            return 0
            ;;
        --script)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return 0
            ;;
        --user)
            mapfile -t COMPREPLY < <(compgen -u -- "$cur"; compgen -W "all" -- "$cur")
            return 0
            ;;
        --allow-env)
            mapfile -t COMPREPLY < <(compgen -W "LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT PYTHONPATH PYTHONINSPECT PYTHONSTARTUP PERL5LIB PERL5OPT BASH_ENV ENV RUBYOPT RUBYLIB NODE_OPTIONS JAVA_TOOL_OPTIONS _JAVA_OPTIONS JDK_JAVA_OPTIONS" -- "$cur")
            return 0
            ;;
        --limit | --before | --since | --until | --only-to | --recipients | --hours | --count)
            return 0 # a number, a time or an address: nothing to offer
            ;;
    esac

    local opts=""
    case $cmd in
        "")
            if [[ $cur == -* ]]; then
                opts="--json --version --help"
            else
                opts=$commands
            fi
            mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
            return 0
            ;;
        programs) opts="--versions" ;;
        attempts) opts="--limit --before --program --verdict --since --until" ;;
        approve) opts="--script --inline --user --allow-env --only-to" ;;
        deny) opts="--script --inline --yes -y" ;;
        forget) opts="--script --inline --user" ;;
        release) opts="--script" ;;
        bulk) opts="--script --recipients --hours" ;;
        alerts)
            if [[ -z $sub && $cur != -* ]]; then
                mapfile -t COMPREPLY < <(compgen -W "ack" -- "$cur")
                return 0
            fi
            [[ -z $sub ]] && opts="--limit"
            ;;
        watch) opts="--count" ;;
        audit) opts="--run --hosts" ;;
        backscatter) opts="--domain" ;;
        outside) opts="--run" ;;
        firewall)
            if [[ -z $sub ]]; then
                [[ $cur == -* ]] && opts="--help" || opts=$firewall_commands
                mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
                return 0
            fi
            case $sub in
                enable) opts="--yes -y" ;;
                allow)
                    opts="--local"
                    if [[ $cur != -* && $positional -eq 0 ]]; then
                        mapfile -t COMPREPLY < <(compgen -W "ssh http https imap imaps pop3s smtp smtps submission mdns dhcpv6-client" -- "$cur")
                        return 0
                    fi
                    ;;
                probes) opts="--limit" ;;
            esac
            ;;
    esac

    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$opts --help" -- "$cur")
        return 0
    fi

    case $cmd in
        approve | deny | forget | release | bulk)
            ((positional == 0)) || return 0
            local candidate quoted
            local -A offered=()
            if [[ $cur == /* || $cur == .* || $cur == \~* ]]; then
                # A path being typed: guardd's programs, and files on disk (to approve a
                # program guardd has not seen yet), quoted and listed as files are.
                compopt -o filenames 2>/dev/null
                # Matched by hand, not with compgen -W, which would expand $ and quotes.
                while IFS= read -r candidate; do
                    [[ $candidate == "$cur"* ]] && COMPREPLY+=("$candidate") && offered[$candidate]=1
                done < <(_guardctl_programs "$guardctl")
                while IFS= read -r candidate; do
                    [[ -n ${offered[$candidate]-} ]] || COMPREPLY+=("$candidate")
                done < <(compgen -f -- "$cur")
            else
                # Ids and whole paths, so that the list shows which program each is
                # (-o filenames would list paths by their last component only).
                while IFS= read -r candidate; do
                    printf -v quoted %q "$candidate"
                    [[ $quoted == "$cur"* ]] && COMPREPLY+=("$quoted")
                done < <(_guardctl_programs "$guardctl")
            fi
            ;;
    esac
    return 0
}
complete -F _guardctl guardctl
