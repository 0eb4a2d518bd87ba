/**
 * The "Running servers" section of the Bento panel: one row per running bento_nb server,
 * linked through the Jupyter proxy when there is one, else by its own address. A record's
 * address becomes a link (and an Open button) only when it is an http(s) URL.
 */
import { IServer } from './api';
import { button, h, httpUrl } from './dom';

export class ServersSection {
  /** The section's content (rows, or the "no server" hint). */
  readonly node = h('div', { class: 'jp-BentoPanel-servers' });

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
      node.append(serverNode(server));
    }
  }
}

function serverNode(server: IServer): HTMLElement {
  const url = httpUrl(server.proxy_url) ?? httpUrl(server.url);
  const label = server.tag ?? `${server.name} (live object)`;
  const version = server.tag ? server.tag.slice(server.tag.indexOf(':') + 1) : 'live object';
  const address = url
    ? h('a', { class: 'jp-BentoPanel-link', href: url, target: '_blank', rel: 'noopener' }, url)
    : h('span', { class: 'jp-BentoPanel-meta' }, server.url ?? 'no http(s) address');
  return h(
    'div',
    {
      class: 'jp-BentoPanel-item jp-BentoPanel-server',
      'data-port': String(server.port),
      'data-tag': server.tag ?? ''
    },
    h(
      'div',
      { class: 'jp-BentoPanel-row' },
      h('span', { class: 'jp-BentoPanel-name', title: label }, server.name),
      h('span', { class: 'jp-BentoPanel-pill', 'data-status': server.status }, server.status)
    ),
    h('div', { class: 'jp-BentoPanel-row jp-BentoPanel-meta', title: label }, version),
    h('div', { class: 'jp-BentoPanel-row' }, address),
    h(
      'div',
      { class: 'jp-BentoPanel-message jp-BentoPanel-meta' },
      `direct: ${server.url ?? '-'} · pid ${server.pid}` +
        (server.apis?.length ? ` · /${server.apis.join(', /')}` : '')
    ),
    url
      ? h(
          'div',
          { class: 'jp-BentoPanel-actions' },
          button(
            'Open',
            'open',
            () => window.open(url, '_blank', 'noopener'),
            'Open the server (Swagger UI) in a new tab'
          )
        )
      : null
  );
}
