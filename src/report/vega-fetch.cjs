// What vega-loader is given for node-fetch in dist/report/vega.cjs: Node's own fetch. kvmlab's plots
// carry their data inline and never fetch anything; node-fetch, and the URL tables it loads as it
// starts, only made loading vega slower.
module.exports = globalThis.fetch;
