//! `--timings`: the page a build writes into its build directory, read as text and looked at in a
//! real browser (Debian's Chromium, headless), whose screenshot is checked pixel by pixel.

use crate::support::Space;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Two rules of slow tasks: four `cook`s (blue), then two `pack`s, the second reading the first.
const PROJECT: &str = r#"
[rule.cook]
run = "sleep 0.3; cp ${SRC} ${TGT}"
ext_in = [".txt"]
ext_out = [".mid"]
color = "blue"

[rule.pack]
run = "sleep 0.3; cat ${SRC} > ${TGT}"

[[gen]]
name = "cooked"
rule = "cook"
source = ["*.txt"]

[[gen]]
name = "left"
rule = "pack"
source = ["build/a.mid", "build/b.mid"]
target = "left.pack"

[[gen]]
name = "all"
rule = "pack"
source = ["build/left.pack", "build/c.mid", "build/d.mid"]
target = "all.pack"
"#;

/// The fills docs/cli.md gives: a rule with `color = "blue"`, the first rule without a colour
/// (the first palette entry no colour takes), and the critical path's marking.
const BLUE: [u8; 3] = [0x4e, 0x79, 0xa7];
const FIRST_FREE: [u8; 3] = [0xf2, 0x8e, 0x2b];
const CRITICAL: [u8; 3] = [0x2b, 0x10, 0x55];

/// Text as the page escapes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The cells of the last column of the rows of the page's critical path table.
fn critical_rows(page: &str) -> Vec<String> {
    let table = page
        .split("<table class=\"critical\">")
        .nth(1)
        .expect("a critical path table")
        .split("</table>")
        .next()
        .unwrap();
    table
        .split("<tr>")
        .filter(|row| row.contains("<td"))
        .map(|row| {
            let last = row.rsplit("<td>").next().unwrap();
            let text = last.split("</td>").next().unwrap();
            // Past the swatch.
            text.rsplit("</span>").next().unwrap().to_string()
        })
        .collect()
}

/// A screenshot of `page`, 1200x800, taken by headless Chromium; RGB rows.
fn screenshot(page: &Path, dir: &Path) -> (usize, usize, Vec<u8>) {
    let png = dir.join("timings.png");
    let out = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,800")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("timeout runs");
    assert!(
        out.status.success() && png.exists(),
        "chromium (installed by scripts/test-setup) took no screenshot: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let file = std::io::BufReader::new(std::fs::File::open(&png).unwrap());
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let rgb: Vec<u8> = buf[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width as usize, info.height as usize, rgb)
}

/// How many pixels have exactly `color`, and the longest horizontal run of them.
fn pixels(width: usize, rgb: &[u8], color: [u8; 3]) -> (usize, usize) {
    let (mut count, mut longest) = (0, 0);
    for row in rgb.chunks(width * 3) {
        let mut run = 0;
        for p in row.chunks(3) {
            if p == color {
                count += 1;
                run += 1;
                longest = longest.max(run);
            } else {
                run = 0;
            }
        }
    }
    (count, longest)
}

#[test]
fn the_timings_page_shows_each_task_on_its_worker_by_rule_and_the_critical_path() {
    let s = Space::new();
    s.write("build.toml", PROJECT);
    for name in ["a", "b", "c", "d"] {
        s.write(&format!("{name}.txt"), name);
    }
    let run = s.kiln(&["build", "-j2", "--timings"]).ok();
    // The page's path, just before the summary.
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines[lines.len() - 2],
        "timings: build/kiln-timings.html",
        "{}",
        run.stderr
    );
    assert!(lines[lines.len() - 1].starts_with("'build' finished successfully"));
    let page = s.read("build/kiln-timings.html");

    // Nothing fetched from elsewhere: no address, no linked or sourced file, no CSS import.
    for outside in ["http://", "https://", "src=", "href=", "@import", "url("] {
        assert!(!page.contains(outside), "the page holds {outside:?}");
    }
    // Each task's progress line in its hover title, as the n-th of 6, with its command.
    let ran = run.ran();
    assert_eq!(ran.len(), 6);
    for label in &ran {
        assert!(page.contains(&escaped(label)), "the page lacks {label}");
    }
    for n in 1..=6 {
        assert_eq!(
            page.matches(&format!("<title>[{n}/6] ")).count(),
            1,
            "[{n}/6]"
        );
    }
    assert!(page.contains(&escaped(
        "$ sleep 0.3; cat build/a.mid build/b.mid > build/left.pack"
    )));
    // Two workers ran them.
    assert!(page.contains(">worker 2</text>") && !page.contains(">worker 3</text>"));

    // The critical path: it ends with the last task, starts with a task that read only sources,
    // and each step is a producer of the next.
    let path = critical_rows(&page);
    let reads: BTreeMap<&str, Vec<&str>> = ran
        .iter()
        .map(|l| {
            let (inputs, output) = l.split_once(": ").unwrap().1.split_once(" -> ").unwrap();
            (output, inputs.split(' ').collect())
        })
        .collect();
    let output = |row: &String| row.rsplit(" -&gt; ").next().unwrap().to_string();
    assert!(path.len() >= 3, "{path:?}");
    assert_eq!(output(path.last().unwrap()), "build/all.pack", "{path:?}");
    assert!(path[0].starts_with("cook: "), "{path:?}");
    for pair in path.windows(2) {
        let (made, reader) = (output(&pair[0]), output(&pair[1]));
        assert!(
            reads[reader.as_str()].contains(&made.as_str()),
            "{made} is not read by {reader}: {path:?}"
        );
    }
    assert!(page.contains(&format!("critical path, {} tasks", path.len())));

    // Each hover title says how long its task took, when, and on which worker: 0.3 s of sleep.
    for n in 1..=6 {
        let title = page.split(&format!("<title>[{n}/6] ")).nth(1).unwrap();
        let when = title.lines().nth(1).unwrap();
        let (took, rest) = when.split_once(" (from ").unwrap();
        let ms: f64 = match took.strip_suffix(" ms") {
            Some(ms) => ms.parse().unwrap(),
            None => took.strip_suffix(" s").unwrap().parse::<f64>().unwrap() * 1000.0,
        };
        let (from, to) = rest.split_once(" s to ").unwrap();
        let to = to.split_once(" s)").unwrap().0;
        let span = to.parse::<f64>().unwrap() - from.parse::<f64>().unwrap();
        assert!((300.0..3000.0).contains(&ms), "[{n}/6] took {took}");
        assert!((span * 1000.0 - ms).abs() < 2.0, "[{n}/6]: {when}");
        assert!(rest.contains(" on worker "), "[{n}/6]: {when}");
    }
    // The summary: every task among the slowest (there are fewer than ten), the time per rule
    // with its task count, and the chart of how many ran at each instant, which peaked at 2.
    let section = |from: &str, to: &str| {
        let start = page.find(from).unwrap_or_else(|| panic!("no {from}"));
        let end = start + page[start..].find(to).unwrap_or_else(|| panic!("no {to}"));
        page[start..end].to_string()
    };
    let slowest = section("<h2>Slowest tasks</h2>", "<h2>Time per rule</h2>");
    assert_eq!(
        slowest.matches("<tr><td class=\"n\">").count(),
        6,
        "{slowest}"
    );
    let per_rule = section("<h2>Time per rule</h2>", "<h2>Critical path</h2>");
    for (rule, tasks) in [("cook", 4), ("pack", 2)] {
        assert!(
            per_rule.contains(&format!("{rule}</td><td class=\"n\">{tasks}</td>")),
            "{per_rule}"
        );
    }
    let shares: u32 = per_rule
        .split("<td class=\"n\">")
        .filter_map(|c| c.split_once("%</td>"))
        .map(|(share, _)| share.parse::<u32>().unwrap())
        .sum();
    assert!(
        (99..=101).contains(&shares),
        "shares add up to {shares}%: {per_rule}"
    );
    assert!(page.contains("<h2>Tasks running at each instant</h2>"));
    assert!(page.contains("parallelism, peak 2"), "the peak is -j2");

    // What a browser shows: the bars of each rule in its fill, wide (a swatch is 12 pixels, a bar
    // a quarter of the 1000-pixel axis), and the critical path's frames.
    let (width, height, rgb) = screenshot(&s.path("build/kiln-timings.html"), s.root());
    assert_eq!((width, height), (1200, 800));
    for (what, color, least) in [
        ("cook's blue", BLUE, 10_000),
        ("pack's orange", FIRST_FREE, 3_000),
        ("the critical path's frame", CRITICAL, 2_000),
    ] {
        let (count, run) = pixels(width, &rgb, color);
        assert!(
            count >= least && run >= 150,
            "{what} {color:02x?}: {count} pixels (at least {least} wanted), longest run {run}"
        );
    }
}
