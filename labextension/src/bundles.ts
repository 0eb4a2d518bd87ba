/**
 * The "Bundles" section of the Bento panel: the store's bundles grouped by name, newest
 * version first, each with Containerize (asks for an image name, then hands the job to the
 * jobs section) and Delete (asks first, says which running servers serve it).
 */
import { Dialog, InputDialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IBundle, IServer, deleteBundle } from './api';
import { button, formatBytes, formatDate, h } from './dom';

/** What the bundles section asks of the panel around it. */
export interface IBundleActions {
  /** Start a containerize job (the jobs section shows it). */
  containerize(tag: string, image: string | null): Promise<void>;
  /** Reload bundles and servers. */
  refresh(): Promise<void>;
}

export class BundlesSection {
  /** The section's content (one group per bundle name, or a hint). */
  readonly node = h('div', { class: 'jp-BentoPanel-bundles' });

  constructor(private readonly _actions: IBundleActions) {}

  /** Show ``bundles``; ``servers`` tell which versions are being served. */
  render(bundles: IBundle[], servers: IServer[]): void {
    this._servers = servers;
    const node = this.node;
    node.replaceChildren();
    if (!bundles.length) {
      node.append(
        h(
          'p',
          { class: 'jp-BentoPanel-empty' },
          'No bundle yet. In a notebook: ',
          h('code', {}, '%bento pack clf')
        )
      );
      return;
    }
    const groups = new Map<string, IBundle[]>();
    for (const bundle of bundles) {
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
          h(
            'span',
            { class: 'jp-BentoPanel-meta' },
            `${versions.length} version${versions.length === 1 ? '' : 's'}`
          )
        )
      );
      for (const bundle of versions) {
        group.append(this._versionNode(bundle));
      }
      node.append(group);
    }
  }

  private _serving(bundle: IBundle): number {
    return this._servers.filter(s => s.tag === bundle.tag).length;
  }

  private _versionNode(bundle: IBundle): HTMLElement {
    const serving = this._serving(bundle);
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
        button(
          'Containerize',
          'containerize',
          () => void this._containerize(bundle),
          'Build a Docker image serving this bundle'
        )
      );
    }
    actions.append(
      button(
        'Delete',
        'delete',
        () => void this._delete(bundle),
        'Delete this version from the store'
      )
    );
    return h(
      'div',
      { class: 'jp-BentoPanel-item jp-BentoPanel-version', 'data-tag': bundle.tag },
      h(
        'div',
        { class: 'jp-BentoPanel-row' },
        h('span', { class: 'jp-BentoPanel-version-id', title: bundle.tag }, bundle.version)
      ),
      details,
      actions
    );
  }

  private async _delete(bundle: IBundle): Promise<void> {
    const serving = this._serving(bundle);
    const body = h(
      'div',
      { class: 'jp-BentoPanel-confirm' },
      h('p', {}, 'Delete ', h('b', {}, bundle.tag), ' from the model store?'),
      serving
        ? h(
            'p',
            {},
            serving === 1
              ? '1 running server serves it; it keeps running until stopped.'
              : `${serving} running servers serve it; they keep running until stopped.`
          )
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
    await this._actions.refresh();
  }

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
      await this._actions.containerize(bundle.tag, (result.value ?? '').trim() || null);
    } catch (error) {
      await showErrorMessage(`Could not containerize ${bundle.tag}`, error as Error);
    }
  }

  private _servers: IServer[] = [];
}
