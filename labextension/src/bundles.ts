/**
 * The "Bundles" section of the Bento panel: the store's bundles grouped by name, newest
 * version first (the one `<name>:latest` means marked "latest"), each with its signature
 * (columns and types), where it came from (notebook, git commit, Python), the Docker images
 * built from it with the command that runs each, Containerize (asks for an image name, then
 * hands the job to the jobs section) and Delete (asks first, says which running servers
 * serve it).
 */
import { Dialog, InputDialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IBundle, IImage, IProvenance, IServer, ISignature, deleteBundle } from './api';
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
    const signatures = (bundle.apis ?? [])
      .filter(api => api.signature?.inputs?.length)
      .map(api =>
        h(
          'div',
          { class: 'jp-BentoPanel-row jp-BentoPanel-meta jp-BentoPanel-signature' },
          `/${api.name} takes ${describeSignature(api.signature as ISignature)}`
        )
      );
    return h(
      'div',
      {
        class: 'jp-BentoPanel-item jp-BentoPanel-version',
        'data-tag': bundle.tag,
        'data-latest': bundle.latest ? 'true' : 'false'
      },
      h(
        'div',
        { class: 'jp-BentoPanel-row' },
        h('span', { class: 'jp-BentoPanel-version-id', title: bundle.tag }, bundle.version),
        bundle.latest
          ? h(
              'span',
              {
                class: 'jp-BentoPanel-flag jp-BentoPanel-latest',
                title: `${bundle.name}:latest and ${bundle.name} mean this version`
              },
              'latest'
            )
          : null
      ),
      details,
      ...signatures,
      bundle.error ? null : provenanceNode(bundle.provenance),
      bundle.images?.length ? imagesNode(bundle.images) : null,
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

/** `age (integer), city (string)`, or `4 columns: number` for positional ones. */
function describeSignature(signature: ISignature): string {
  const inputs = signature.inputs;
  const types = new Set(inputs.map(c => c.type));
  if (inputs.every(c => c.name === null || c.name === undefined) && types.size === 1) {
    return `${inputs.length} columns: ${inputs[0].type}`;
  }
  return inputs
    .map((c, i) => `${c.name ?? `column ${i + 1}`} (${c.type}${c.optional ? ', optional' : ''})`)
    .join(', ');
}

/** Notebook, git commit (dirty or clean) and Python of a bundle, one line. */
function provenanceNode(origin: IProvenance | undefined): HTMLElement {
  const parts: string[] = [];
  if (origin?.notebook) {
    parts.push(`from ${origin.notebook}`);
  }
  if (origin?.git?.commit) {
    const dirty = origin.git.dirty === true ? ' (uncommitted changes)' : '';
    parts.push(`git ${origin.git.commit.slice(0, 12)}${dirty}`);
  }
  if (origin?.python) {
    parts.push(origin.python);
  }
  const text = parts.length ? parts.join(' · ') : 'provenance not recorded';
  return h(
    'div',
    { class: 'jp-BentoPanel-message jp-BentoPanel-meta jp-BentoPanel-provenance', title: text },
    text
  );
}

/** The images built from a bundle, newest first, each with its `docker run` command. */
function imagesNode(images: IImage[]): HTMLElement {
  return h(
    'div',
    { class: 'jp-BentoPanel-images' },
    ...images.map(image =>
      h(
        'div',
        { class: 'jp-BentoPanel-image', 'data-image': image.image },
        h(
          'div',
          { class: 'jp-BentoPanel-row jp-BentoPanel-meta' },
          `image ${image.image}` + (image.built_at ? ` · built ${formatDate(image.built_at)}` : '')
        ),
        h('code', { class: 'jp-BentoPanel-command', title: 'Run it' }, image.run)
      )
    )
  );
}
