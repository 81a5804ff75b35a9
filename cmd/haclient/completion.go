package main

// bashCompletion is printed by "haclient completion bash". Load it with
//
//	source <(haclient completion bash)
//
// or install it as /usr/share/bash-completion/completions/haclient.
const bashCompletion = `# bash completion for haclient
_haclient() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="status standby takeover failover maintenance resources cleanup tickles fence disk config completion help"
    if [[ $prev == --list-conns || $prev == -list-conns ]]; then
        COMPREPLY=()
        return
    fi
    if [[ $prev == --socket || $prev == -socket || $prev == --config || $prev == -config ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return
    fi
    local i cmd="" sub=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        --socket | -socket | --config | -config | --list-conns | -list-conns) ((i++)) ;;
        -*) ;;
        *)
            if [[ -z $cmd ]]; then
                cmd=${COMP_WORDS[i]}
            elif [[ -z $sub ]]; then
                sub=${COMP_WORDS[i]}
            fi
            ;;
        esac
    done
    local words="--socket"
    case $cmd in
    "") words="$commands --socket --help" ;;
    status | resources | tickles) words="--json --socket" ;;
    maintenance) [[ -z $sub ]] && words="on off --socket" ;;
    fence) words="--self --socket" ;;
    disk)
        if [[ -z $sub ]]; then
            words="init dump clear"
        elif [[ $prev == --config || $prev == -config || $cur != -* ]]; then
            COMPREPLY=($(compgen -f -- "$cur"))
            return
        elif [[ $sub == init ]]; then
            words="--force --config --list-conns"
        elif [[ $sub == dump ]]; then
            words="--json"
        fi
        ;;
    config)
        if [[ -z $sub ]]; then
            words="check"
        else
            COMPREPLY=($(compgen -f -- "$cur"))
            return
        fi
        ;;
    completion) words="bash" ;;
    help) [[ -z $sub ]] && words="$commands" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _haclient haclient
`
