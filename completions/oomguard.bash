# bash completion for oomguard(8)                        -*- shell-script -*-

_oomguard() {
    local cur prev words cword
    _init_completion || return

    local commands="config daemon kmem ps run status tree version"
    local daemon_flags="--config --scope --dry-run --interval --socket --mem-term --mem-kill
        --swap-term --swap-kill --psi --prefer --avoid --ignore --protect --term-grace
        --kill-deadline --no-mrelease --kill-cgroup --no-forkbomb --kmem-budget
        --metrics-listen --pre-kill-hook --post-kill-hook --no-dbus --dbus-address
        --desktop-notify --log-level --log-format"
    local client_flags="--socket --json --config --scope --top --root"
    local run_flags="--mlock --mlock=onfault --inherit --recursive --oom-score-adj
        --memory-min --memory-high --memory-max --pids-max --report --trace"

    if [[ $cword -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$commands help" -- "$cur"))
        return
    fi

    case $prev in
        --config)
            _filedir toml
            return ;;
        --socket | --dropins)
            _filedir
            return ;;
        --scope)
            _filedir -d
            return ;;
        --pre-kill-hook | --post-kill-hook)
            _filedir
            return ;;
        --log-level)
            COMPREPLY=($(compgen -W "debug info warn error" -- "$cur"))
            return ;;
        --log-format)
            COMPREPLY=($(compgen -W "auto text journal" -- "$cur"))
            return ;;
        --psi)
            COMPREPLY=($(compgen -W "'memory some 150ms 2s' 'memory full 150ms 2s' 'io full 500ms 2s'" -- "$cur"))
            return ;;
        --interval | --term-grace | --kill-deadline | --mem-term | --mem-kill | --swap-term | \
        --swap-kill | --prefer | --avoid | --ignore | --protect | --kmem-budget | \
        --metrics-listen | --dbus-address | --oom-score-adj | --memory-* | --pids-max)
            return ;;
    esac

    local cmd=${words[1]}
    case $cmd in
        daemon)
            COMPREPLY=($(compgen -W "$daemon_flags" -- "$cur")) ;;
        status | ps | tree | kmem)
            COMPREPLY=($(compgen -W "$client_flags" -- "$cur")) ;;
        run)
            if [[ " ${words[*]} " == *" -- "* ]]; then
                _command_offset $((cword))
            else
                COMPREPLY=($(compgen -W "$run_flags --" -- "$cur"))
            fi ;;
        config)
            if [[ $cword -eq 2 ]]; then
                COMPREPLY=($(compgen -W "check show" -- "$cur"))
            elif [[ ${words[2]} == check ]]; then
                if [[ $cur == -* ]]; then
                    COMPREPLY=($(compgen -W "--dropins" -- "$cur"))
                else
                    _filedir toml
                fi
            else
                COMPREPLY=($(compgen -W "--config --dropins" -- "$cur"))
            fi ;;
    esac
} &&
    complete -F _oomguard oomguard
