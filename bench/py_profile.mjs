// --profile of the browser benches: a cProfile of the page's Python around one timed run.

const START = "import cProfile\n_bench_prof = cProfile.Profile()\n_bench_prof.enable()";
const REPORT = `
import io, pstats
_bench_prof.disable()
_out = io.StringIO()
_stats = pstats.Stats(_bench_prof, stream=_out).sort_stats("tottime")
_stats.print_stats(30)
_stats.print_callers(10)
_out.getvalue()
`;

/** Run `fn()`; when `enabled`, under cProfile (it slows the run). Resolves to
 * `{ value, profile }`, `profile` being the report text (undefined when not enabled). */
export async function profiled(pyodide, enabled, fn) {
  if (enabled) pyodide.runPython(START);
  const value = await fn();
  return { value, profile: enabled ? pyodide.runPython(REPORT) : undefined };
}
