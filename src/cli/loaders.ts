/**
 * The loader of each command group: the group's module under ./commands,
 * imported when one of its commands runs (registry.ts, the command table,
 * stays a leaf that imports no command).
 */
import type { CommandGroup } from './command.js';
import type { GroupName } from './registry.js';

export const GROUPS: Record<GroupName, () => Promise<CommandGroup>> = {
  image: () => import('./commands/image.js'),
  namespace: () => import('./commands/namespace.js'),
  data: () => import('./commands/data.js'),
  sharing: () => import('./commands/sharing.js'),
  maps: () => import('./commands/maps.js'),
  check: () => import('./commands/check.js'),
  inspect: () => import('./commands/inspect.js'),
  shell: () => import('./commands/shell.js'),
  completion: () => import('./commands/completion.js'),
  dax: () => import('./commands/dax.js'),
  lab: () => import('./commands/dax-lab.js'),
  report: () => import('./commands/report.js'),
  scenario: () => import('./commands/scenario.js'),
};
