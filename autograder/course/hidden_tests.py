"""Feedback HTML without the hidden tests.

nbgrader's feedback shows every test cell's full source and tracebacks
(nbgrader#917, #1363), which would publish the hidden tests. Feedback here
runs nbgrader's own ``ClearHiddenTests`` on the autograded notebook and then
``HideTestTracebacks``, which keeps only the final ``Error: message`` line of
errors in test cells (a traceback quotes the hidden lines it passed through).
"""
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, GetGrades, NbGraderPreprocessor


class HideTestTracebacks(NbGraderPreprocessor):
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


FEEDBACK_PREPROCESSORS = [GetGrades, ClearHiddenTests, HideTestTracebacks, CSSHTMLHeaderPreprocessor]
