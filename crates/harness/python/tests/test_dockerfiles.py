import unittest

from cacheme_packaging.dockerfiles import dockerignore_regex, ignored, parse_flags, strip_heredocs


def patterns(*lines):
    return [(line.startswith("!"), dockerignore_regex(line.lstrip("!"))) for line in lines]


class StripHeredocs(unittest.TestCase):
    def test_bodies_go_and_line_numbers_stay(self):
        text = "FROM a\nRUN <<EOF\nCOPY not an instruction\nEOF\nUSER app"
        self.assertEqual(strip_heredocs(text), "FROM a\nRUN <<EOF\n\n\nUSER app")

    def test_dash_form_allows_tab_indented_terminators(self):
        text = "COPY <<-'END' /etc/x\n\tbody\n\tEND\nUSER app"
        self.assertEqual(strip_heredocs(text).split("\n"), ["COPY <<-'END' /etc/x", "", "", "USER app"])

    def test_two_heredocs_on_one_line_end_in_order(self):
        text = "COPY <<A <<B /dst/\na\nA\nb\nB\nUSER app"
        self.assertEqual(strip_heredocs(text).split("\n")[-1], "USER app")

    def test_comments_open_no_heredoc(self):
        self.assertEqual(strip_heredocs("# see <<EOF\nUSER app"), "# see <<EOF\nUSER app")

    def test_an_unterminated_heredoc_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "unterminated heredoc <<EOF"):
            strip_heredocs("RUN <<EOF\necho")


class Dockerignore(unittest.TestCase):
    def test_a_directory_excludes_everything_under_it(self):
        pats = patterns("target")
        self.assertTrue(ignored(pats, "target"))
        self.assertTrue(ignored(pats, "target/debug/cacheme-api"))
        self.assertFalse(ignored(pats, "crates/target"))

    def test_single_stars_stay_within_a_segment(self):
        pats = patterns("*.md")
        self.assertTrue(ignored(pats, "README.md"))
        self.assertFalse(ignored(pats, "docs/README.md"))
        self.assertFalse(ignored(pats, "README.mdx"))

    def test_double_stars_cross_segments_and_may_match_none(self):
        pats = patterns("**/node_modules")
        self.assertTrue(ignored(pats, "node_modules"))
        self.assertTrue(ignored(pats, "frontend/node_modules/x/index.js"))

    def test_question_mark_is_one_character_but_not_a_slash(self):
        rx = dockerignore_regex("a?c")
        self.assertTrue(rx.match("abc"))
        self.assertFalse(rx.match("a/c"))

    def test_the_last_matching_pattern_wins(self):
        pats = patterns("*.md", "!README.md")
        self.assertTrue(ignored(pats, "CHANGES.md"))
        self.assertFalse(ignored(pats, "README.md"))

    def test_leading_slashes_and_dots_are_normalised(self):
        pats = patterns("/frontend/./dist")
        self.assertTrue(ignored(pats, "frontend/dist/index.html"))
        self.assertTrue(ignored(pats, "./frontend/dist"))


class Flags(unittest.TestCase):
    def test_leading_flags_are_split_from_the_rest(self):
        flags, rest = parse_flags("--from=build --chown=1000:1000 --link /out /app")
        self.assertEqual(flags, {"from": "build", "chown": "1000:1000", "link": ""})
        self.assertEqual(rest, "/out /app")

    def test_no_flags(self):
        self.assertEqual(parse_flags("rust:1.88 AS build"), ({}, "rust:1.88 AS build"))


if __name__ == "__main__":
    unittest.main()
