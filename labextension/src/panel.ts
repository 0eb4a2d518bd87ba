/**
 * The "Bento" left-sidebar panel, assembled from its sections: running servers
 * (servers.ts), the bundles of the store (bundles.ts) and containerize jobs (jobs.ts).
 * A Poll reloads bundles and servers every few seconds while the panel is visible (backing
 * off while the server extension does not answer); `refresh()` reloads at once. All text
 * goes in through textContent (never HTML); every REST call goes through api.ts.
 */
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { listBundles, listServers } from './api';
import { BundlesSection } from './bundles';
import { button, h } from './dom';
import { JobsSection } from './jobs';
import { ServersSection } from './servers';

/** The panel's widget id (the sidebar tab is `[data-id="bento-nb-panel"]`). */
export const PANEL_ID = 'bento-nb-panel';
const REFRESH_MS = 5000;
const REFRESH_MAX_MS = 60_000;

export const bentoIcon = new LabIcon({
  name: 'bento-nb:bento',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161"><path d="M3 4h18a1 1 0 0 1 1 1v14a1 1 0 0 1-1 ' +
    '1H3a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1zm1 2v5h7V6zm9 0v5h7V6zm-9 7v5h4v-5zm6 0v5h10v-5z"/>' +
    '</g></svg>'
});

/** The sidebar panel. */
export class BentoPanel extends Widget {
  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-BentoPanel');
    this.title.icon = bentoIcon;
    this.title.caption = 'Bento: bundles and running servers';

    this._status = h('div', { class: 'jp-BentoPanel-status' });
    this._servers = new ServersSection(() => this.refresh());
    this._jobs = new JobsSection(() => void this.refresh());
    this._bundles = new BundlesSection({
      containerize: (tag, image) => this._jobs.start(tag, image),
      refresh: () => this.refresh()
    });
    const refresh = button('Refresh', 'refresh', () => void this.refresh());
    this.node.append(
      h('header', { class: 'jp-BentoPanel-header' }, h('h2', {}, 'Bento'), refresh),
      this._status,
      h('h3', {}, 'Running servers'),
      this._servers.node,
      h('h3', {}, 'Bundles'),
      this._bundles.node,
      h('h3', {}, 'Containerize jobs'),
      this._jobs.node
    );
    this._poll = new Poll({
      factory: () => this._load(),
      frequency: { interval: REFRESH_MS, backoff: true, max: REFRESH_MAX_MS },
      standby: () => !this.isVisible,
      name: 'bento-nb:panel'
    });
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    this._jobs.dispose();
    super.dispose();
  }

  /** Reload bundles and servers (and, the first time, the jobs) from the server
   * extension; a failure shows in the panel's status line. */
  async refresh(): Promise<void> {
    try {
      await this._load();
    } catch {
      // shown in the status line by _load
    }
  }

  protected onAfterShow(msg: Message): void {
    void this._poll.refresh();
  }

  /** One load; rejects when the server extension cannot be reached (the poll backs off).
   * Loads run one at a time: one asked for during another runs after it, so what it shows
   * is never older than the request. */
  private _load(): Promise<void> {
    const load = this._queue.catch(() => undefined).then(() => this._fetchAndRender());
    this._queue = load;
    return load;
  }

  private async _fetchAndRender(): Promise<void> {
    try {
      await this._jobs.load();
      const [bundles, servers] = await Promise.all([listBundles(), listServers()]);
      this._servers.render(servers);
      this._bundles.render(bundles, servers);
      this._status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      this._status.classList.remove('jp-mod-error');
    } catch (error) {
      this._status.textContent =
        'Cannot reach the bento_nb server extension: ' + (error as Error).message;
      this._status.classList.add('jp-mod-error');
      throw error;
    }
  }

  private readonly _status: HTMLElement;
  private readonly _servers: ServersSection;
  private readonly _bundles: BundlesSection;
  private readonly _jobs: JobsSection;
  private readonly _poll: Poll;
  private _queue: Promise<void> = Promise.resolve();
}
