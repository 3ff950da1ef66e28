// ESLint (flat config) with typescript-eslint. `npm run lint` runs it; .ci/run runs that.
//
// Besides the recommended rules, it enforces the layer order of ARCHITECTURE.md:
//   format → io → btree → fs → dax → check → cli
// a module imports only from its own layer and the layers before it, and only
// src/cli loads the terminal packages (commander, cli-table3, ora, inquirer).
// Static imports, type imports, `export … from`, dynamic import() and
// require() of a literal are all covered.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const LAYERS = ['format', 'io', 'btree', 'fs', 'dax', 'check', 'cli'];
const CLI_PACKAGES = ['commander', 'cli-table3', 'ora', 'inquirer'];

/** A module specifier that reaches into one of `dirs` (relative, from anywhere under src/). */
const into = (dirs) => `^(\\.\\.?/)+(${dirs.join('|')})/`;

/** The rules for the modules of one layer: nothing above it, and no terminal packages below cli. */
function layerRules(i) {
  const above = LAYERS.slice(i + 1);
  const layer = LAYERS[i];
  const why = `layers import only downward (${LAYERS.join(' → ')}; ARCHITECTURE.md): ${layer} may not use ${above.join(', ')}`;
  const pkgWhy = 'only src/cli loads the terminal packages (ARCHITECTURE.md)';
  const patterns = above.length > 0 ? [{ regex: into(above), message: why }] : [];
  const paths = layer === 'cli' ? [] : CLI_PACKAGES.map((name) => ({ name, message: pkgWhy }));
  const banned = [
    ...(above.length > 0 ? [[into(above), why]] : []),
    ...(layer === 'cli' ? [] : [[`^(${CLI_PACKAGES.join('|')})$`, pkgWhy]]),
  ];
  const syntax = banned.flatMap(([re, message]) => {
    const value = `Literal[value=/${re.replace(/\//g, '\\/')}/]`;
    return [
      { selector: `ImportExpression > ${value}.source`, message: `import(): ${message}` },
      {
        selector: `:matches(CallExpression[callee.name='require'], CallExpression[callee.callee.name='createRequire']) > ${value}`,
        message: `require(): ${message}`,
      },
    ];
  });
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', { paths, patterns }],
      ...(syntax.length > 0 ? { 'no-restricted-syntax': ['error', ...syntax] } : {}),
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'tmp/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: {
        // Node 20: the globals the sources and scripts use.
        process: 'readonly',
        Buffer: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        URL: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        SharedArrayBuffer: 'readonly',
        Atomics: 'readonly',
        performance: 'readonly',
        structuredClone: 'readonly',
        NodeJS: 'readonly',
        AbortController: 'readonly',
        queueMicrotask: 'readonly',
        globalThis: 'readonly',
      },
    },
    rules: {
      // `_name` marks a parameter a signature needs but the body does not use.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  ...LAYERS.map((_, i) => layerRules(i)),
  {
    // CommonJS scripts (the benchmark's preload hook): require is how they load.
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', __dirname: 'readonly', __filename: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The library entry re-exports every layer but the CLI, and loads none of its packages.
    files: ['src/index.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: CLI_PACKAGES.map((name) => ({ name, message: 'the library entry loads no terminal package' })),
          patterns: [{ regex: into(['cli']), message: 'the library entry does not load the CLI' }],
        },
      ],
    },
  },
);
