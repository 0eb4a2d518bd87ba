/**
 * bento-nb JupyterLab extension: wiring only. The panel lives in panel.ts (its sections in
 * servers.ts, bundles.ts, jobs.ts), REST in api.ts. The command `bento:refresh` ("Refresh
 * Bento panel", in the command palette) reloads the panel.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

import { BentoPanel } from './panel';

/** Command ids of the extension. */
export const CommandIDs = { refresh: 'bento:refresh' } as const;

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'bento-nb:panel',
  description: 'A left-sidebar "Bento" panel: bundles, running servers, containerize.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new BentoPanel();
    app.shell.add(panel, 'left', { rank: 650 });
    if (restorer) {
      restorer.add(panel, panel.id);
    }
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Bento panel',
      caption: 'Reload the bundles, running servers and jobs of the Bento panel',
      execute: () => panel.refresh()
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.refresh, category: 'Bento' });
    }
  }
};

export default plugin;
