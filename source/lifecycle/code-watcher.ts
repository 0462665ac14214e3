/**
 * `--reload` (and `-d`): watch the app's code and reload when it changes, as gunicorn's reloader does.
 * Every reload starts a fresh generation of actor threads, so the app and everything it imports are
 * imported anew; the old generation finishes its requests first, so a save in the editor drops nothing.
 *
 * What is watched: the app module's directory tree (without node_modules and dot-directories), the config
 * file and any `--reload-extra-file`. Changes are gathered for a moment so that saving ten files (or an
 * editor's write-rename dance) makes one reload. chokidar does the watching: it knows each platform's
 * quirks (inotify limits, Windows rename events, editors' atomic writes).
 */
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';

/** Files whose change reloads: code and the data formats apps commonly import. */
export const WATCHED_EXTENSIONS = ['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts', '.json', '.node'];

/** How long changes are gathered before one reload. */
const SETTLE_MS = 250;

export interface CodeWatcherOptions {
  /** Directories whose code trees are watched. */
  roots: string[];
  /** Files (or directories) watched whatever their extension. */
  extraFiles: string[];
  /** Called once per burst of changes with the files that changed. */
  onChange: (files: string[]) => void;
}

export class CodeWatcher {
  private constructor(
    private readonly watcher: FSWatcher,
    private readonly watched: string[],
  ) {}

  /** What is watched, for the log. */
  describe(): string {
    return this.watched.join(', ');
  }

  static async start({ roots, extraFiles, onChange }: CodeWatcherOptions): Promise<CodeWatcher> {
    const extras = new Set(extraFiles.map((file) => path.resolve(file)));
    const ignored = (file: string, stats?: { isFile(): boolean }): boolean => {
      if (extras.has(file)) return false;
      const base = path.basename(file);
      if (base === 'node_modules' || (base.startsWith('.') && base.length > 1)) return true;
      return stats?.isFile() === true && !WATCHED_EXTENSIONS.includes(path.extname(file));
    };
    const watcher = watch([...roots, ...extras], { ignoreInitial: true, ignored });
    let changed = new Set<string>();
    let timer: NodeJS.Timeout | undefined;
    const collect = (file: string) => {
      changed.add(file);
      clearTimeout(timer);
      timer = setTimeout(() => {
        const files = [...changed];
        changed = new Set();
        onChange(files);
      }, SETTLE_MS);
    };
    watcher.on('add', collect).on('change', collect).on('unlink', collect);
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    return new CodeWatcher(watcher, [...roots, ...extras]);
  }

  close(): Promise<void> {
    return this.watcher.close();
  }
}
