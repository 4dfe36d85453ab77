//! Output shared by the report binaries: aligned or Markdown tables, and the load average.

/// Prints `rows` under `header` as an aligned table, or a Markdown one. Columns whose index is
/// in `text` are left-aligned; the others hold numbers and are right-aligned.
pub fn print_table(header: &[&str], rows: &[Vec<String>], markdown: bool, text: &[usize]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let left = |c: usize| text.contains(&c);
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if left(c) {
                    format!("{s:<w$}", w = widths[c])
                } else {
                    format!("{s:>w$}", w = widths[c])
                }
            })
            .collect();
        if markdown { format!("| {} |", padded.join(" | ")) } else { padded.join("  ") }
    };
    let names: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    println!("{}", line(&names));
    if markdown {
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(c, &w)| {
                let dashes = "-".repeat(w.max(3) - 1);
                if left(c) { format!(":{dashes}") } else { format!("{dashes}:") }
            })
            .collect();
        println!("| {} |", rule.join(" | "));
    }
    for r in rows {
        println!("{}", line(r));
    }
}

/// The 1, 5 and 15 minute load averages: above the worker count, other processes competed
/// for the cores during the run.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}
