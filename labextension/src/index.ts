/**
 * bento-nb JupyterLab extension: wiring only. The panel lives in panel.ts, REST in api.ts.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

import { BentoPanel } from './panel';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'bento-nb:panel',
  description: 'A left-sidebar "Bento" panel: bundles, running servers, containerize.',
  autoStart: true,
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, restorer: ILayoutRestorer | null) => {
    const panel = new BentoPanel();
    app.shell.add(panel, 'left', { rank: 650 });
    if (restorer) {
      restorer.add(panel, panel.id);
    }
    app.commands.addCommand('bento-nb:refresh', {
      label: 'Bento: Refresh Bundles and Servers',
      execute: () => panel.refresh()
    });
  }
};

export default plugin;
