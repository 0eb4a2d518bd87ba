/**
 * The "Bento" left-sidebar panel: running bento_nb servers, the bundles of the store, and
 * containerize jobs. It refreshes itself every few seconds while visible and polls the
 * jobs it started until they finish; a job started here also shows as a JupyterLab
 * notification ("Building …", then its outcome) and its row is scrolled into view and
 * highlighted. All text goes in through textContent (never HTML).
 */
import {
  Dialog,
  InputDialog,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  IBundle,
  IJob,
  IServer,
  containerize,
  deleteBundle,
  getJob,
  listBundles,
  listServers,
  proxiedUrl,
  requestAPI
} from './api';

/** The panel's widget id (the sidebar tab is `[data-id="bento-nb-panel"]`). */
export const PANEL_ID = 'bento-nb-panel';
const REFRESH_MS = 5000;
const JOB_POLL_MS = 1000;
const JOB_LOG_LINES = 200;
const SUCCESS_CLOSE_MS = 8000;

export const bentoIcon = new LabIcon({
  name: 'bento-nb:bento',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161"><path d="M3 4h18a1 1 0 0 1 1 1v14a1 1 0 0 1-1 ' +
    '1H3a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1zm1 2v5h7V6zm9 0v5h7V6zm-9 7v5h4v-5zm6 0v5h10v-5z"/>' +
    '</g></svg>'
});

type Child = Node | string | null | undefined | false;

/** Create an element with attributes and children (strings become text nodes). */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child) {
      node.append(child);
    }
  }
  return node;
}

function button(label: string, action: string, onClick: () => void, title = ''): HTMLElement {
  const node = h(
    'button',
    {
      class: 'jp-Button jp-mod-minimal jp-mod-styled jp-BentoPanel-action',
      'data-action': action,
      title: title || label
    },
    label
  );
  node.addEventListener('click', onClick);
  return node;
}

export function formatBytes(n?: number): string {
  if (n === undefined || n === null) {
    return '';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${value.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function isPending(job: IJob): boolean {
  return job.status === 'queued' || job.status === 'running';
}

/** The notification text for a job: in progress, built, or failed. */
export function jobMessage(job: IJob): string {
  if (isPending(job)) {
    return job.image ? `Building ${job.image} from ${job.tag} …` : `Building ${job.tag} …`;
  }
  if (job.status === 'succeeded') {
    const image = job.result?.image ?? job.image;
    return image ? `Built ${job.tag} as ${image}` : `Built ${job.tag}`;
  }
  // the toast that said "Building <tag> …" turns into this one: the message gets the room
  return `Containerize failed: ${job.error?.message ?? 'unknown error'}`;
}

function formatDate(text?: string | number): string {
  if (text === undefined || text === null || text === '') {
    return '';
  }
  const date = typeof text === 'number' ? new Date(text * 1000) : new Date(text);
  return isNaN(date.getTime()) ? String(text) : date.toLocaleString();
}

/** The sidebar panel. */
export class BentoPanel extends Widget {
  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-BentoPanel');
    this.title.icon = bentoIcon;
    this.title.caption = 'Bento: bundles and running servers';

    this._status = h('div', { class: 'jp-BentoPanel-status' });
    this._serversNode = h('div', { class: 'jp-BentoPanel-servers' });
    this._bundlesNode = h('div', { class: 'jp-BentoPanel-bundles' });
    this._jobsNode = h('div', { class: 'jp-BentoPanel-jobs' });
    const refresh = button('Refresh', 'refresh', () => void this.refresh());
    this.node.append(
      h('header', { class: 'jp-BentoPanel-header' }, h('h2', {}, 'Bento'), refresh),
      this._status,
      h('h3', {}, 'Running servers'),
      this._serversNode,
      h('h3', {}, 'Bundles'),
      this._bundlesNode,
      h('h3', {}, 'Containerize jobs'),
      this._jobsNode
    );
    this._renderJobs();
    this._timer = window.setInterval(() => {
      if (this.isVisible) {
        void this.refresh();
      }
    }, REFRESH_MS);
  }

  dispose(): void {
    window.clearInterval(this._timer);
    if (this._jobTimer !== null) {
      window.clearTimeout(this._jobTimer);
    }
    super.dispose();
  }

  /** Reload bundles and servers from the server extension. */
  async refresh(): Promise<void> {
    if (this._refreshing) {
      return;
    }
    this._refreshing = true;
    try {
      if (!this._jobsLoaded) {
        await this._loadJobs();
      }
      const [bundles, servers] = await Promise.all([listBundles(), listServers()]);
      this._bundles = bundles;
      this._servers = servers;
      this._renderServers();
      this._renderBundles();
      this._status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      this._status.classList.remove('jp-mod-error');
    } catch (error) {
      this._status.textContent =
        'Cannot reach the bento_nb server extension: ' + (error as Error).message;
      this._status.classList.add('jp-mod-error');
    } finally {
      this._refreshing = false;
    }
  }

  protected onAfterShow(msg: Message): void {
    void this.refresh();
  }

  // -- servers

  private _renderServers(): void {
    const node = this._serversNode;
    node.replaceChildren();
    if (!this._servers.length) {
      node.append(
        h('p', { class: 'jp-BentoPanel-empty' }, 'No running server. In a notebook: ',
          h('code', {}, '%bento serve'))
      );
      return;
    }
    for (const server of this._servers) {
      const url = proxiedUrl(server) ?? server.url;
      const label = server.tag ?? `${server.name} (live object)`;
      const version = server.tag ? server.tag.slice(server.tag.indexOf(':') + 1) : 'live object';
      const link = h(
        'a',
        { class: 'jp-BentoPanel-link', href: url, target: '_blank', rel: 'noopener' },
        url
      );
      node.append(
        h(
          'div',
          { class: 'jp-BentoPanel-item jp-BentoPanel-server', 'data-port': String(server.port),
            'data-tag': server.tag ?? '' },
          h(
            'div',
            { class: 'jp-BentoPanel-row' },
            h('span', { class: 'jp-BentoPanel-name', title: label }, server.name),
            h('span', { class: 'jp-BentoPanel-pill', 'data-status': server.status },
              server.status)
          ),
          h('div', { class: 'jp-BentoPanel-row jp-BentoPanel-meta', title: label }, version),
          h('div', { class: 'jp-BentoPanel-row' }, link),
          h(
            'div',
            { class: 'jp-BentoPanel-message jp-BentoPanel-meta' },
            `direct: ${server.url} · pid ${server.pid}` +
              (server.apis?.length ? ` · /${server.apis.join(', /')}` : '')
          ),
          h(
            'div',
            { class: 'jp-BentoPanel-actions' },
            button('Open', 'open', () => window.open(url, '_blank', 'noopener'),
              'Open the server (Swagger UI) in a new tab')
          )
        )
      );
    }
  }

  // -- bundles

  private _renderBundles(): void {
    const node = this._bundlesNode;
    node.replaceChildren();
    if (!this._bundles.length) {
      node.append(
        h('p', { class: 'jp-BentoPanel-empty' }, 'No bundle yet. In a notebook: ',
          h('code', {}, '%bento pack clf'))
      );
      return;
    }
    const groups = new Map<string, IBundle[]>();
    for (const bundle of this._bundles) {
      groups.set(bundle.name, [...(groups.get(bundle.name) ?? []), bundle]);
    }
    for (const [name, versions] of [...groups.entries()].sort()) {
      versions.sort((a, b) => (a.version < b.version ? 1 : -1)); // newest first
      const group = h(
        'div',
        { class: 'jp-BentoPanel-bundle', 'data-name': name },
        h(
          'div',
          { class: 'jp-BentoPanel-row' },
          h('span', { class: 'jp-BentoPanel-name' }, name),
          h('span', { class: 'jp-BentoPanel-meta' },
            `${versions.length} version${versions.length === 1 ? '' : 's'}`)
        )
      );
      for (const bundle of versions) {
        group.append(this._versionNode(bundle));
      }
      node.append(group);
    }
  }

  private _versionNode(bundle: IBundle): HTMLElement {
    const serving = this._servers.filter(s => s.tag === bundle.tag).length;
    const details = bundle.error
      ? h('div', { class: 'jp-BentoPanel-message jp-mod-error' }, bundle.error)
      : h(
          'div',
          { class: 'jp-BentoPanel-row jp-BentoPanel-meta' },
          `${formatBytes(bundle.size)} · ${formatDate(bundle.created_at)}` +
            (serving ? ` · serving on ${serving} server${serving === 1 ? '' : 's'}` : '')
        );
    const actions = h('div', { class: 'jp-BentoPanel-actions' });
    if (!bundle.error) {
      actions.append(
        button('Containerize', 'containerize', () => void this._containerize(bundle),
          'Build a Docker image serving this bundle')
      );
    }
    actions.append(button('Delete', 'delete', () => void this._delete(bundle),
      'Delete this version from the store'));
    return h(
      'div',
      { class: 'jp-BentoPanel-item jp-BentoPanel-version', 'data-tag': bundle.tag },
      h('div', { class: 'jp-BentoPanel-row' },
        h('span', { class: 'jp-BentoPanel-version-id', title: bundle.tag }, bundle.version)),
      details,
      actions
    );
  }

  private async _delete(bundle: IBundle): Promise<void> {
    const serving = this._servers.filter(s => s.tag === bundle.tag).length;
    const body = h(
      'div',
      { class: 'jp-BentoPanel-confirm' },
      h('p', {}, 'Delete ', h('b', {}, bundle.tag), ' from the model store?'),
      serving
        ? h('p', {}, serving === 1
            ? '1 running server serves it; it keeps running until stopped.'
            : `${serving} running servers serve it; they keep running until stopped.`)
        : null,
      h('p', {}, 'This cannot be undone.')
    );
    const result = await showDialog({
      title: 'Delete bundle',
      body: new Widget({ node: body }),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!result.button.accept) {
      return;
    }
    try {
      await deleteBundle(bundle.name, bundle.version);
    } catch (error) {
      await showErrorMessage(`Could not delete ${bundle.tag}`, error as Error);
    }
    await this.refresh();
  }

  // -- containerize jobs

  private async _containerize(bundle: IBundle): Promise<void> {
    const result = await InputDialog.getText({
      title: `Containerize ${bundle.tag}`,
      label: 'Docker image name (leave blank for the default)',
      placeholder: `${bundle.name.toLowerCase()}:latest`,
      okLabel: 'Build'
    });
    if (!result.button.accept) {
      return;
    }
    try {
      const job = await containerize(bundle.tag, (result.value ?? '').trim() || null);
      this._notes.set(job.id, Notification.emit(jobMessage(job), 'in-progress',
        { autoClose: false }));
      this._highlight = job.id;
      this._addJob(job);
      this._jobsNode.querySelector(`[data-job="${CSS.escape(job.id)}"]`)
        ?.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    } catch (error) {
      await showErrorMessage(`Could not containerize ${bundle.tag}`, error as Error);
    }
  }

  private async _loadJobs(): Promise<void> {
    const { jobs } = await requestAPI<{ jobs: IJob[] }>('jobs');
    for (const job of jobs.reverse()) {
      this._addJob({ ...job, log: [], log_total: 0 }, false);
    }
    this._jobsLoaded = true;
  }

  private _addJob(job: IJob, render = true): void {
    const known = { ...job, log: [...(job.log ?? [])] };
    this._jobs.set(job.id, known);
    this._settle(known);
    if (render) {
      this._renderJobs();
    }
    this._scheduleJobPoll();
  }

  private _scheduleJobPoll(): void {
    const pending = [...this._jobs.values()].some(
      j => j.status === 'queued' || j.status === 'running'
    );
    if (!pending || this._jobTimer !== null || this.isDisposed) {
      this._renderJobs();
      return;
    }
    this._jobTimer = window.setTimeout(async () => {
      this._jobTimer = null;
      for (const job of [...this._jobs.values()]) {
        if (job.status !== 'queued' && job.status !== 'running') {
          continue;
        }
        try {
          const update = await getJob(job.id, job.log_total);
          const log = [...(job.log ?? []), ...(update.log ?? [])].slice(-JOB_LOG_LINES);
          this._jobs.set(job.id, { ...update, log });
          this._settle(update);
        } catch {
          // the server may restart; keep polling until it answers or the job ends
        }
      }
      this._renderJobs();
      if ([...this._jobs.values()].some(j => j.status === 'succeeded')) {
        void this.refresh();
      }
      this._scheduleJobPoll();
    }, JOB_POLL_MS);
  }

  /** Turn the "Building …" notification of a job that has ended into its outcome. */
  private _settle(job: IJob): void {
    const id = this._notes.get(job.id);
    if (id === undefined || isPending(job)) {
      return;
    }
    this._notes.delete(job.id);
    const ok = job.status === 'succeeded';
    Notification.update({
      id,
      message: jobMessage(job),
      type: ok ? 'success' : 'error',
      autoClose: ok ? SUCCESS_CLOSE_MS : false
    });
  }

  private _renderJobs(): void {
    const node = this._jobsNode;
    node.replaceChildren();
    if (!this._jobs.size) {
      node.append(h('p', { class: 'jp-BentoPanel-empty' },
        'Containerize a bundle to build a Docker image; its progress shows here.'));
      return;
    }
    const jobs = [...this._jobs.values()].reverse();
    for (const job of jobs) {
      const title = `${job.tag}` + (job.image ? ` → ${job.image}` : '');
      const log = h('pre', { class: 'jp-BentoPanel-log' }, (job.log ?? []).join('\n'));
      node.append(
        h(
          'div',
          { class: 'jp-BentoPanel-item jp-BentoPanel-job' +
              (job.id === this._highlight ? ' jp-mod-highlighted' : ''),
            'data-job': job.id, 'data-status': job.status },
          h('div', { class: 'jp-BentoPanel-row' },
            h('span', { class: 'jp-BentoPanel-name', title }, title),
            h('span', { class: 'jp-BentoPanel-pill', 'data-status': job.status }, job.status)),
          job.error
            ? h('div', { class: 'jp-BentoPanel-message jp-mod-error' }, job.error.message)
            : null,
          job.result?.image
            ? h('div', { class: 'jp-BentoPanel-row jp-BentoPanel-meta' },
                `image ${job.result.image}` +
                  (job.result.seconds !== undefined ? ` in ${job.result.seconds.toFixed(1)} s` : ''))
            : null,
          job.log?.length ? log : null
        )
      );
      log.scrollTop = log.scrollHeight;
    }
  }

  private _status: HTMLElement;
  private _serversNode: HTMLElement;
  private _bundlesNode: HTMLElement;
  private _jobsNode: HTMLElement;
  private _bundles: IBundle[] = [];
  private _servers: IServer[] = [];
  private _jobs = new Map<string, IJob>();
  /** Job id -> id of its in-progress notification, for the jobs started here. */
  private _notes = new Map<string, string>();
  /** The job started last from this panel: its row is highlighted. */
  private _highlight: string | null = null;
  private _jobsLoaded = false;
  private _refreshing = false;
  private _timer: number;
  private _jobTimer: number | null = null;
}
