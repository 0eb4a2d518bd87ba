/**
 * REST client of the bento_nb Jupyter server extension (`<base_url>/bento/api/...`).
 *
 * Every REST call of the extension is a function of this module, and every one goes through
 * `requestAPI()`, built on JupyterLab's ServerConnection, which adds the Jupyter token or
 * XSRF header and the base URL.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** An API's signature as the manifest records it (columns with their types). */
export interface ISignature {
  from?: string;
  inputs: { name: string | null; type: string; optional?: boolean }[];
}

/** Where a bundle came from (the manifest's provenance, without the cells' source). */
export interface IProvenance {
  notebook?: string;
  git?: { commit?: string; dirty?: boolean | null };
  python?: string;
  packages?: number;
  packages_sha256?: string;
}

/** A Docker image built from a bundle, with the command that runs it. */
export interface IImage {
  image: string;
  image_id?: string;
  size?: number;
  built_at?: string;
  run: string;
}

/** One bundle of the store (`GET api/bundles`); `error` set when it cannot be read. */
export interface IBundle {
  tag: string;
  name: string;
  version: string;
  path: string;
  created_at?: string;
  size?: number;
  apis?: { name: string; signature?: ISignature }[];
  provenance?: IProvenance;
  /** the version `<name>:latest` means */
  latest?: boolean;
  images?: IImage[];
  error?: string;
}

/** Who runs a server: a kernel (and its notebook, when this Jupyter server runs it) or a
 * process (`bento-nb serve ...`). */
export type IOwner =
  | { kind: 'kernel'; kernel_id: string; notebook: string | null }
  | { kind: 'process'; pid: number; command: string | null };

/** The live figures of a running server (requests/s: a 5-second average). */
export interface IStats {
  requests: number;
  errors: number;
  requests_per_second: number;
  rate_window_seconds?: number;
  p50_ms: number;
  p99_ms?: number;
  in_flight?: number;
}

/** One running bento_nb server (`GET api/servers`). */
export interface IServer {
  /** `<pid>-<port>`, for `DELETE api/servers/<id>` */
  id: string;
  pid: number;
  host: string;
  port: number;
  /** null when the record's address is not an http(s) URL */
  url: string | null;
  tag: string | null;
  name: string;
  apis?: string[];
  started_at?: string | number;
  proxy_url: string | null;
  status: string;
  owner?: IOwner;
  stats?: IStats | null;
  /** its bundle is no longer in the store */
  bundle_deleted?: boolean;
}

/** A containerize job (`GET api/jobs/<id>`). */
export interface IJob {
  id: string;
  tag: string;
  image: string | null;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  error: { type: string; message: string; command?: string } | null;
  result: { image?: string; image_id?: string; seconds?: number } | null;
  log?: string[];
  log_start?: number;
  log_total: number;
}

/**
 * Call `bento/api/<endPoint>` and return its JSON. Non-2xx answers throw a
 * ServerConnection.ResponseError carrying the server's error message.
 */
export async function requestAPI<T>(endPoint = '', init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'bento', 'api', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: unknown = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, errorMessage(data, text));
  }
  return data as T;
}

/** The message of an error answer: `{"error": {"message": ...}}`, `{"message": ...}`, or
 * the text itself. */
function errorMessage(data: unknown, text: string): string {
  if (data !== null && typeof data === 'object') {
    const { error, message } = data as { error?: { message?: unknown }; message?: unknown };
    if (typeof error?.message === 'string') {
      return error.message;
    }
    if (typeof message === 'string') {
      return message;
    }
  }
  return text;
}

export async function listBundles(): Promise<IBundle[]> {
  return (await requestAPI<{ bundles: IBundle[] }>('bundles')).bundles;
}

export async function listServers(): Promise<IServer[]> {
  return (await requestAPI<{ servers: IServer[] }>('servers')).servers;
}

/** Stop a server (it drains first); resolves once it has stopped. */
export async function stopServer(id: string): Promise<void> {
  await requestAPI(`servers/${encodeURIComponent(id)}`, { method: 'DELETE' });
}

export async function deleteBundle(name: string, version: string): Promise<void> {
  const path = `bundles/${encodeURIComponent(name)}/${encodeURIComponent(version)}`;
  await requestAPI(path, { method: 'DELETE' });
}

export async function containerize(tag: string, image: string | null): Promise<IJob> {
  return requestAPI<IJob>('containerize', {
    method: 'POST',
    body: JSON.stringify({ tag, image: image || null })
  });
}

export async function listJobs(): Promise<IJob[]> {
  return (await requestAPI<{ jobs: IJob[] }>('jobs')).jobs;
}

export async function getJob(id: string, since = 0): Promise<IJob> {
  return requestAPI<IJob>(`jobs/${encodeURIComponent(id)}?since=${since}`);
}
