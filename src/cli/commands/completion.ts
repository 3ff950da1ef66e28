/**
 * `completion bash|zsh`: a completion script generated from the command table,
 * so it can never disagree with what the parser accepts. Commands complete
 * first; after a command, its long options; otherwise file names (the image
 * and host files). Paths inside an image complete in `shell`, which has the
 * image open.
 */
import type { CommandImpl } from '../command.js';
import { usage } from '../errors.js';
import { COMMANDS } from '../registry.js';

function longOptions(flags: string): string[] {
  return [...flags.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]);
}

function table(): { names: string[]; opts: Map<string, string[]> } {
  const names = COMMANDS.map((c) => c.name);
  const opts = new Map<string, string[]>();
  for (const c of COMMANDS) opts.set(c.name, [...c.options.flatMap((o) => longOptions(o.flags)), '--json', '--help']);
  return { names, opts };
}

export function bashScript(): string {
  const { names, opts } = table();
  const cases = [...opts].map(([n, o]) => `    ${n}) opts="${o.join(' ')}" ;;`).join('\n');
  return `# bash completion for daxtool; load with: eval "$(daxtool completion bash)"
_daxtool() {
  local cur cmd opts
  cur="\${COMP_WORDS[COMP_CWORD]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${names.join(' ')} --version --help" -- "$cur") )
    return
  fi
  cmd="\${COMP_WORDS[1]}"
  case "$cmd" in
${cases}
    *) opts="" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
  else
    COMPREPLY=( $(compgen -f -- "$cur") )
  fi
}
complete -o filenames -F _daxtool daxtool
`;
}

export function zshScript(): string {
  const { names, opts } = table();
  const cases = [...opts].map(([n, o]) => `    ${n}) opts=(${o.join(' ')}) ;;`).join('\n');
  return `#compdef daxtool
# zsh completion for daxtool; load with: eval "$(daxtool completion zsh)" after compinit
_daxtool() {
  local -a cmds opts
  cmds=(${names.join(' ')})
  if (( CURRENT == 2 )); then
    compadd -- $cmds --version --help
    return
  fi
  case "\${words[2]}" in
${cases}
    *) opts=() ;;
  esac
  if [[ "\${words[CURRENT]}" == -* ]]; then
    compadd -- $opts
  else
    _files
  fi
}
compdef _daxtool daxtool
`;
}

const completion: CommandImpl = async (_ctx, args) => {
  const shell = String(args[0]);
  if (shell !== 'bash' && shell !== 'zsh') throw usage(`no completion for shell '${shell}'`, 'use bash or zsh');
  const script = shell === 'bash' ? bashScript() : zshScript();
  return { json: { shell, script }, human: () => script };
};

export const commands = { completion };
