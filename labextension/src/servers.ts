/**
 * The "Running servers" section of the Bento panel, a control centre like JupyterLab's own
 * Running panel: one row per running bento_nb server with who owns it (the notebook of its
 * kernel, or the `bento-nb serve` process), its live stats, a flag when its bundle was
 * deleted, and Stop (through the Jupyter server: the server drains, then stops; a kernel's
 * widget then says "stopped"). Linked through the Jupyter proxy when there is one, else by
 * its own address; a record's address becomes a link (and an Open button) only when it is
 * an http(s) URL.
 */
import { showErrorMessage } from '@jupyterlab/apputils';

import { IOwner, IServer, IStats, stopServer } from './api';
import { button, h, httpUrl } from './dom';

export class ServersSection {
  /** The section's content (rows, or the "no server" hint). */
  readonly node = h('div', { class: 'jp-BentoPanel-servers' });

  /** `refresh` reloads the panel (after a Stop). */
  constructor(private readonly _refresh: () => Promise<void>) {}

  render(servers: IServer[]): void {
    const node = this.node;
    node.replaceChildren();
    if (!servers.length) {
      node.append(
        h(
          'p',
          { class: 'jp-BentoPanel-empty' },
          'No running server. In a notebook: ',
          h('code', {}, '%bento serve')
        )
      );
      return;
    }
    for (const server of servers) {
      node.append(this._serverNode(server));
    }
  }

  private _serverNode(server: IServer): HTMLElement {
    const url = httpUrl(server.proxy_url) ?? httpUrl(server.url);
    const label = server.tag ?? `${server.name} (live object)`;
    const version = server.tag ? server.tag.slice(server.tag.indexOf(':') + 1) : 'live object';
    const address = url
      ? h('a', { class: 'jp-BentoPanel-link', href: url, target: '_blank', rel: 'noopener' }, url)
      : h('span', { class: 'jp-BentoPanel-meta' }, server.url ?? 'no http(s) address');
    const actions = h('div', { class: 'jp-BentoPanel-actions' });
    if (url) {
      actions.append(
        button(
          'Open',
          'open',
          () => window.open(url, '_blank', 'noopener'),
          'Open the server (Swagger UI) in a new tab'
        )
      );
    }
    if (server.status === 'running' && server.id) {
      const stop = button(
        'Stop',
        'stop',
        () => void this._stop(server, stop),
        'Stop this server: it answers the requests it has, then stops'
      );
      actions.append(stop);
    }
    return h(
      'div',
      {
        class: 'jp-BentoPanel-item jp-BentoPanel-server',
        'data-port': String(server.port),
        'data-tag': server.tag ?? '',
        'data-id': server.id ?? ''
      },
      h(
        'div',
        { class: 'jp-BentoPanel-row' },
        h('span', { class: 'jp-BentoPanel-name', title: label }, server.name),
        h('span', { class: 'jp-BentoPanel-pill', 'data-status': server.status }, server.status)
      ),
      h('div', { class: 'jp-BentoPanel-row jp-BentoPanel-meta', title: label }, version),
      server.bundle_deleted
        ? h(
            'div',
            { class: 'jp-BentoPanel-row jp-BentoPanel-flags' },
            h(
              'span',
              {
                class: 'jp-BentoPanel-flag jp-BentoPanel-deleted',
                title: 'Its bundle was deleted from the store; the server keeps what it loaded'
              },
              'bundle deleted'
            )
          )
        : null,
      server.owner ? ownerNode(server.owner) : null,
      h('div', { class: 'jp-BentoPanel-row' }, address),
      server.stats ? statsNode(server.stats) : null,
      h(
        'div',
        { class: 'jp-BentoPanel-message jp-BentoPanel-meta' },
        `direct: ${server.url ?? '-'} · pid ${server.pid}` +
          (server.apis?.length ? ` · /${server.apis.join(', /')}` : '')
      ),
      actions.childElementCount ? actions : null
    );
  }

  private async _stop(server: IServer, stop: HTMLElement): Promise<void> {
    stop.setAttribute('disabled', '');
    stop.textContent = 'Stopping…';
    try {
      await stopServer(server.id);
    } catch (error) {
      await showErrorMessage(`Could not stop ${server.tag ?? server.name}`, error as Error);
    }
    await this._refresh();
  }
}

/** "notebook: train.ipynb" for a kernel's server, "process 4242: bento-nb serve …" else. */
function ownerNode(owner: IOwner): HTMLElement {
  const text =
    owner.kind === 'kernel'
      ? owner.notebook
        ? `notebook: ${owner.notebook}`
        : `kernel ${owner.kernel_id.slice(0, 8)} (not run by this Jupyter server)`
      : `process ${owner.pid}: ${owner.command ?? '?'}`;
  return h(
    'div',
    {
      class: 'jp-BentoPanel-row jp-BentoPanel-meta jp-BentoPanel-owner',
      'data-kind': owner.kind,
      title: text
    },
    text
  );
}

function statsNode(stats: IStats): HTMLElement {
  const seconds = stats.rate_window_seconds ?? 5;
  return h(
    'div',
    {
      class: 'jp-BentoPanel-row jp-BentoPanel-meta jp-BentoPanel-stats',
      'data-requests': String(stats.requests),
      title: `requests/s: a ${seconds}-second average; p50: the median latency of recent requests`
    },
    `${stats.requests} requests · ${stats.errors} errors · ` +
      `${stats.requests_per_second} req/s (${seconds} s avg) · p50 ${stats.p50_ms} ms`
  );
}
