// Module-resolution hooks that let plain Node 20 load the published
// wukongimjssdk@1.0.4 package as-is.
//
// The package ships tsc output in ES-module syntax but (a) its package.json
// has no "type": "module", (b) its relative imports omit the ".js" extension
// (`from "./index"`), and one is a bare directory import (`from "."`), and
// (c) it does `import { Md5 } from "md5-typescript"`, whose CommonJS entry is
// a UMD bundle that Node cannot find named exports in. Browsers/bundlers
// paper over all of this; Node's ESM loader does not. These hooks fix exactly
// those three things and touch nothing else.
//
// Registered from sdk_compat.mjs via module.register() before the SDK is
// imported.

const SDK_LIB = '/node_modules/wukongimjssdk/lib/';

function inSdk(url) {
  return typeof url === 'string' && url.startsWith('file:') && url.includes(SDK_LIB);
}

export async function resolve(specifier, context, nextResolve) {
  if (inSdk(context.parentURL)) {
    if (specifier === '.' || specifier === './') {
      return nextResolve('./index.js', context);
    }
    if ((specifier.startsWith('./') || specifier.startsWith('../')) && !specifier.endsWith('.js')) {
      return nextResolve(specifier + '.js', context);
    }
    if (specifier === 'md5-typescript') {
      // The package's ESM build (its "module" field), which Node ignores.
      const base = await nextResolve(specifier, context);
      return { ...base, url: new URL('../index.js', base.url).href, format: 'module' };
    }
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  // md5-typescript/dist/index.js is ESM inside a package without "type": "module".
  if (inSdk(url) || (url.startsWith('file:') && url.includes('/node_modules/md5-typescript/dist/index.js'))) {
    return nextLoad(url, { ...context, format: 'module' });
  }
  return nextLoad(url, context);
}
