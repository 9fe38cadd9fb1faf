/** The dashboard's whole stylesheet, inline (no external assets). Phone width first, wider screens get columns. */
export const STYLES = `
:root{--bg:#f5f6f8;--card:#fff;--ink:#17202e;--muted:#5d6878;--line:#e2e5ea;--accent:#2457d6;--accent-ink:#fff;
--ok:#15803d;--ok-bg:#e6f4ea;--bad:#b42318;--bad-bg:#fdecea;--warn:#a15c00;--warn-bg:#fff4e0;--info:#1d4ed8;--info-bg:#e8efff;
--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
a{color:var(--accent)}
h1{font-size:1.45rem;margin:.2rem 0 1rem;display:flex;flex-wrap:wrap;align-items:center;gap:.5rem}
h2{font-size:1.05rem;margin:0}
h3{font-size:.95rem;margin:1rem 0 .4rem}
code,pre,.mono{font-family:var(--mono);font-size:.86em}
pre{background:#0f172a;color:#e2e8f0;padding:.8rem;border-radius:8px;overflow-x:auto;white-space:pre;margin:.5rem 0}
main{max-width:1180px;margin:0 auto;padding:1rem}
.top{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;justify-content:space-between;padding:.6rem 1rem;background:#101828;color:#fff}
.brand{color:#fff;text-decoration:none;font-weight:700;font-size:1.05rem}
.logo{color:#7aa2ff}
.who{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;font-size:.9rem}
.who .link{color:#c7d2fe}
.nav{display:flex;flex-wrap:wrap;gap:.15rem;padding:.35rem .6rem;background:#fff;border-bottom:1px solid var(--line)}
.nav a{padding:.4rem .65rem;border-radius:6px;text-decoration:none;color:var(--muted);font-weight:500}
.nav a.active{background:var(--info-bg);color:var(--accent)}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1rem;margin:0 0 1rem;min-width:0}
.card-head{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:center;gap:.5rem;margin-bottom:.75rem}
.card-actions{display:flex;flex-wrap:wrap;gap:.4rem}
.grid{display:grid;gap:1rem;grid-template-columns:minmax(0,1fr)}
@media(min-width:800px){.grid.two{grid-template-columns:repeat(2,minmax(0,1fr))}.grid.three{grid-template-columns:repeat(3,minmax(0,1fr))}}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(100px,1fr));gap:.6rem;margin-bottom:1rem}
.stat{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.55rem .7rem}
.stat-label{font-size:.78rem;color:var(--muted);text-transform:uppercase;letter-spacing:.03em}
.stat-value{font-size:1.3rem;font-weight:650;font-variant-numeric:tabular-nums}
.stat-hint{font-size:.78rem;color:var(--muted)}
.stat.bad .stat-value{color:var(--bad)}.stat.warn .stat-value{color:var(--warn)}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.78rem;color:var(--muted);text-transform:uppercase;letter-spacing:.03em;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.muted td{color:var(--muted)}
tr.hot td{background:#fff8f6}
.badge{display:inline-block;padding:.08rem .45rem;border-radius:999px;font-size:.76rem;font-weight:600;background:#eef0f3;color:var(--muted);white-space:nowrap}
.badge.ok{background:var(--ok-bg);color:var(--ok)}.badge.bad{background:var(--bad-bg);color:var(--bad)}
.badge.warn{background:var(--warn-bg);color:var(--warn)}.badge.info{background:var(--info-bg);color:var(--info)}
.badge.plan-enterprise{background:#ede9fe;color:#5b21b6}.badge.plan-pro{background:var(--info-bg);color:var(--info)}
.flash{padding:.65rem .8rem;border-radius:8px;margin:0 0 1rem;border:1px solid}
.flash.ok{background:var(--ok-bg);border-color:#b7dfc3;color:#0f5132}
.flash.error{background:var(--bad-bg);border-color:#f5c2bd;color:#7a1a12}
.flash.warn{background:var(--warn-bg);border-color:#f2d19b;color:#6b3d00}
.flash.info{background:var(--info-bg);border-color:#c3d3fb;color:#1e3a8a}
form.inline{display:inline}
.form-grid{display:grid;grid-template-columns:minmax(0,1fr);gap:.7rem}
@media(min-width:700px){.form-grid{grid-template-columns:repeat(3,minmax(0,1fr))}.field.wide{grid-column:1/-1}}
.field label{display:block;font-size:.85rem;font-weight:600;margin-bottom:.2rem}
.field .hint{font-size:.8rem;color:var(--muted);margin:.2rem 0 0}
.field-error{font-size:.82rem;color:var(--bad);margin:.25rem 0 0;font-weight:600}
.field.invalid input,.field.invalid select{border-color:var(--bad);background:#fffafa}
input,select,textarea{font:inherit;width:100%;max-width:100%;padding:.42rem .5rem;border:1px solid #c9ced6;border-radius:6px;background:#fff;color:var(--ink)}
input[type=checkbox]{width:auto}
input.narrow{width:6.5rem}
.check{display:flex;gap:.4rem;align-items:center;font-weight:500}
button,.button{font:inherit;display:inline-block;padding:.42rem .8rem;border-radius:6px;border:1px solid var(--accent);background:var(--accent);color:var(--accent-ink);cursor:pointer;text-decoration:none;font-weight:600;white-space:nowrap}
button.secondary,.button.secondary{background:#fff;color:var(--accent);border-color:#c9d5f5}
button.danger,.button.danger{background:var(--bad);border-color:var(--bad);color:#fff}
button.danger-outline,.button.danger-outline{background:#fff;color:var(--bad);border-color:#f1b5ae}
button.small,.button.small{padding:.2rem .5rem;font-size:.82rem}
button.link{background:none;border:none;padding:0;color:var(--accent);font-weight:500;cursor:pointer}
.actions{display:flex;flex-wrap:wrap;gap:.35rem;align-items:center}
.form-actions{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.8rem;align-items:center}
.muted{color:var(--muted)}
.small{font-size:.85rem}
.nowrap{white-space:nowrap}
.secret{font-family:var(--mono);word-break:break-all;background:#fffbe6;border:1px dashed #e0b400;padding:.5rem .6rem;border-radius:6px;display:block;margin:.25rem 0 .6rem}
.kill-on{border:2px solid var(--bad);background:#fff5f4}
figure{margin:0}
.chart-box h3{margin:.2rem 0 .3rem}
.chart{width:100%;height:auto;display:block;max-height:260px}
.chart text{font:10px system-ui,sans-serif;fill:#6b7280}
.legend{display:flex;flex-wrap:wrap;gap:.25rem .9rem;font-size:.82rem;color:var(--muted);margin-top:.3rem}
.swatch{display:inline-block;width:.7rem;height:.7rem;border-radius:2px;margin-right:.3rem;vertical-align:-.05rem}
.site-card h2 a{text-decoration:none}
.empty{text-align:left}
.empty h2{margin-bottom:.5rem}
.login{max-width:430px;margin:3rem auto}
.kv{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.25rem .9rem;margin:0}
.kv dt{color:var(--muted)}.kv dd{margin:0;min-width:0;overflow-wrap:anywhere}
.bar{height:.6rem;background:#eef0f3;border-radius:999px;overflow:hidden;margin:.35rem 0}
.bar span{display:block;height:100%;background:var(--accent)}
.pager{display:flex;justify-content:flex-end;gap:.5rem;margin-top:.6rem}
.diff{font-family:var(--mono);font-size:.8rem;overflow-wrap:anywhere}
.diff del{color:var(--bad);text-decoration:line-through}.diff ins{color:var(--ok);text-decoration:none}
`;
