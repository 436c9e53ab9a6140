// `yotpo-insider completion bash|zsh`: a completion script built from the program itself, so it
// lists exactly the commands and options the tables declare.

import type { Command } from 'commander';
import { EXIT, UsageError } from '../errors.js';
import type { Io } from '../pipeline/report.js';

export function completionScript(shell: string, program: Command, io: Io): number {
  const commands = program.commands.filter((command) => command.name() !== 'demo');
  const cases = commands
    .map(
      (command) =>
        `    ${command.name()}) opts="${command.options
          .map((option) => option.long)
          .filter(Boolean)
          .join(' ')}" ;;`,
    )
    .join('\n');
  const names = commands.map((command) => command.name()).join(' ');
  const bash = `# yotpo-insider completion (bash): source <(yotpo-insider completion bash)
_yotpo_insider() {
  local cur=\${COMP_WORDS[COMP_CWORD]} opts
  if [ "$COMP_CWORD" -eq 1 ]; then COMPREPLY=($(compgen -W "${names}" -- "$cur")); return; fi
  case \${COMP_WORDS[1]} in
${cases}
  esac
  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -F _yotpo_insider yotpo-insider
`;
  if (shell === 'bash') io.stdout.write(bash);
  else if (shell === 'zsh')
    io.stdout.write(
      `# yotpo-insider completion (zsh): source <(yotpo-insider completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n${bash}`,
    );
  else throw new UsageError(`completion: unknown shell ${shell} (bash or zsh)`);
  return EXIT.ok;
}
