package archtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// module is the root directory and path of the module under test.
type module struct{ dir, path string }

// findModule walks up from the test's directory to the go.mod above it.
func findModule(t *testing.T) module {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					p = strings.Trim(strings.TrimSpace(p), `"`)
					return module{dir, p}
				}
			}
			t.Fatalf("%s/go.mod has no module line", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// goFile is one parsed Go file of the module.
type goFile struct {
	rel  string // slash-separated, relative to the module root
	file *ast.File
	fset *token.FileSet
}

// packageDirs parses every .go file of the module (imports and package
// clause, with comments), whatever its build constraints, grouped by
// directory. It skips testdata, vendor, directories whose names start with
// "." or "_" (the go tool ignores them too) and nested modules.
func packageDirs(t *testing.T, m module, mode parser.Mode) map[string][]goFile {
	t.Helper()
	fset := token.NewFileSet()
	dirs := map[string][]goFile{}
	err := filepath.WalkDir(m.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == m.dir {
				return nil
			}
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // its own module, with its own rules
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, mode)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(m.dir, path)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		dirs[dir] = append(dirs[dir], goFile{filepath.ToSlash(rel), f, fset})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatalf("no Go files under %s", m.dir)
	}
	return dirs
}

// inSDK reports whether a slash-separated directory is the SDK or below it.
func inSDK(dir string) bool { return dir == "sdk" || strings.HasPrefix(dir, "sdk/") }

// TestSDKDoesNotImportInternal keeps sdk/ free of the module's internal
// packages (STYLE.md: the SDK never imports internal/; bots depend on it,
// and one day it must move to a module of its own). It reads the imports of
// every file under sdk/, tests and files for other platforms included, and
// asks the go tool for the packages the SDK reaches, so an import through
// another package counts too.
func TestSDKDoesNotImportInternal(t *testing.T) {
	m := findModule(t)
	internal := m.path + "/internal"
	isInternal := func(p string) bool { return p == internal || strings.HasPrefix(p, internal+"/") }

	// Every file, whatever its build tags.
	files := 0
	for dir, fs := range packageDirs(t, m, parser.ImportsOnly) {
		if !inSDK(dir) {
			continue
		}
		for _, f := range fs {
			files++
			for _, imp := range f.file.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if isInternal(p) || (strings.HasPrefix(p, m.path+"/") && !inSDK(strings.TrimPrefix(p, m.path+"/"))) {
					t.Errorf("%s:%d imports %s: the SDK may import only the standard library, third-party modules and sdk/...",
						f.rel, f.fset.Position(imp.Pos()).Line, p)
				}
			}
		}
	}
	if files == 0 {
		t.Fatal("no Go files under sdk/: has the SDK moved? Update this test")
	}

	// What the build reaches, through any number of packages.
	pkgs := goList(t, m, "-e", "-deps", "-test", "./sdk/...")
	seen := 0
	for _, p := range pkgs {
		if p.Error != nil {
			t.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		if !strings.HasPrefix(p.ImportPath, m.path+"/") && p.ImportPath != m.path {
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if isInternal(imp) {
				t.Errorf("%s imports %s; the SDK reaches it (go list -deps -test ./sdk/...)", p.ImportPath, imp)
			}
		}
		// Test variants count as their package: "sdk [sdk.test]", the external
		// "sdk_test" and the generated test main "sdk.test".
		rel := strings.TrimPrefix(strings.Fields(p.ImportPath)[0], m.path+"/")
		rel = strings.TrimSuffix(strings.TrimSuffix(rel, "_test"), ".test")
		if path := strings.Fields(p.ImportPath)[0]; !isInternal(path) && !inSDK(rel) {
			t.Errorf("the SDK depends on %s, which is outside sdk/", p.ImportPath)
		}
	}
	if seen == 0 {
		t.Fatal("go list found no SDK packages")
	}
}

// TestSamplesUseOnlyTheSDK keeps the sample bots under examples/ honest:
// they show what a bot author can write, so their code imports only the
// standard library, third-party modules, sdk/... and the samples' own
// examples/internal/... (which follows the same rule). Their tests may use
// the module's internal packages (calltest runs a node for them).
func TestSamplesUseOnlyTheSDK(t *testing.T) {
	m := findModule(t)
	allowed := func(p string) bool {
		rel, ok := strings.CutPrefix(p, m.path+"/")
		return !ok || inSDK(rel) || rel == "examples/internal" || strings.HasPrefix(rel, "examples/internal/")
	}
	files := 0
	for dir, fs := range packageDirs(t, m, parser.ImportsOnly) {
		if dir != "examples" && !strings.HasPrefix(dir, "examples/") {
			continue
		}
		for _, f := range fs {
			if strings.HasSuffix(f.rel, "_test.go") {
				continue
			}
			files++
			for _, imp := range f.file.Imports {
				if p, _ := strconv.Unquote(imp.Path.Value); !allowed(p) {
					t.Errorf("%s:%d imports %s: a sample bot may import only the standard library, third-party modules, sdk/... and examples/internal/...",
						f.rel, f.fset.Position(imp.Pos()).Line, p)
				}
			}
		}
	}
	if files == 0 {
		t.Fatal("no Go files under examples/: have the samples moved? Update this test")
	}
}

// listedPackage is the part of `go list -json` this test reads.
type listedPackage struct {
	ImportPath string
	Imports    []string
	Error      *struct{ Err string }
}

func goList(t *testing.T, m module, args ...string) []listedPackage {
	t.Helper()
	cmd := exec.Command(goTool(t), append([]string{"list", "-json=ImportPath,Imports,Error"}, args...)...)
	cmd.Dir = m.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// goTool finds the go command: on PATH, else in GOROOT.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go") // the toolchain that built the test
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the go command is neither on PATH nor in GOROOT: %v", err)
	}
	return p
}

// TestEveryPackageHasADocComment keeps `go doc` useful for every package:
// a library package's doc starts "Package name", a command's says what it
// runs. A directory of tests only still needs one (a doc.go), so its
// purpose is written down.
func TestEveryPackageHasADocComment(t *testing.T) {
	m := findModule(t)
	dirs := packageDirs(t, m, parser.PackageClauseOnly|parser.ParseComments)
	names := slices.Sorted(func(yield func(string) bool) {
		for d := range dirs {
			if !yield(d) {
				return
			}
		}
	})
	for _, dir := range names {
		files := dirs[dir]
		var lib []goFile // files of the package proper, not its tests
		for _, f := range files {
			if !strings.HasSuffix(f.rel, "_test.go") {
				lib = append(lib, f)
			}
		}
		candidates := lib
		if len(lib) == 0 {
			candidates = files // a directory of tests only
		}
		name := strings.TrimSuffix(candidates[0].file.Name.Name, "_test")
		var docs []string
		for _, f := range candidates {
			if f.file.Doc != nil && strings.TrimSpace(f.file.Doc.Text()) != "" {
				docs = append(docs, f.rel)
				if text := f.file.Doc.Text(); name != "main" && !strings.HasPrefix(text, "Package "+name+" ") {
					t.Errorf("%s: the package doc comment starts %q; start it \"Package %s ...\"", f.rel, firstLine(text), name)
				}
			}
		}
		switch {
		case len(docs) == 0 && len(lib) == 0:
			t.Errorf("%s: package %s has tests only and no package doc comment: add a doc.go saying what it tests", dir, name)
		case len(docs) == 0:
			t.Errorf("%s: package %s has no package doc comment (// Package %s ... above the package clause of one file, usually doc.go)", dir, name, name)
		}
	}
	if _, ok := dirs["internal/archtest"]; !ok {
		t.Fatalf("the walk missed this very package; it found %v", names)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// TestConfigFieldsAreDocumented keeps the configuration self-describing:
// every exported field of config.Config and of every struct it holds has a
// doc comment, which is what an operator reads about a key.
func TestConfigFieldsAreDocumented(t *testing.T) {
	m := findModule(t)
	const pkgDir = "internal/config"
	types := map[string]*ast.TypeSpec{}
	var fset *token.FileSet
	for _, f := range packageDirs(t, m, parser.ParseComments)[pkgDir] {
		if strings.HasSuffix(f.rel, "_test.go") {
			continue
		}
		fset = f.fset
		for _, d := range f.file.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.TYPE {
				for _, s := range g.Specs {
					ts := s.(*ast.TypeSpec)
					types[ts.Name.Name] = ts
				}
			}
		}
	}
	root, ok := types["Config"]
	if !ok {
		t.Fatalf("no type Config in %s", pkgDir)
	}

	w := &fieldWalker{t: t, fset: fset, m: m, types: types, done: map[string]bool{}}
	w.structType("Config", "", "", root.Type)
	// Guard against a walk that checks nothing: Config has a dozen
	// sections, each with several fields.
	if w.checked < 40 {
		t.Fatalf("only %d fields checked under config.Config; the walk is broken", w.checked)
	}
	t.Logf("%d fields of config.Config and its structs checked", w.checked)
}

// fieldWalker checks doc comments on struct fields, following field types
// to the package's own struct types.
type fieldWalker struct {
	t       *testing.T
	fset    *token.FileSet
	m       module
	types   map[string]*ast.TypeSpec
	done    map[string]bool // struct types already checked
	checked int
}

// structType checks the fields of a struct type reached at goPath (Go
// field names) and yamlPath (configuration keys).
func (w *fieldWalker) structType(typeName, goPath, yamlPath string, expr ast.Expr) {
	st, ok := expr.(*ast.StructType)
	if !ok {
		return
	}
	for _, f := range st.Fields.List {
		names := make([]string, 0, len(f.Names))
		for _, n := range f.Names {
			names = append(names, n.Name)
		}
		if len(names) == 0 { // embedded
			names = []string{embeddedName(f.Type)}
		}
		key := yamlKey(f)
		for _, name := range names {
			if !ast.IsExported(name) {
				continue
			}
			w.checked++
			gp := join(goPath, name, ".")
			yp := yamlPath
			if key != "-" {
				yp = join(yamlPath, cmpKey(key, name), ".")
			}
			if f.Doc == nil || strings.TrimSpace(f.Doc.Text()) == "" {
				pos := w.fset.Position(f.Pos())
				rel, _ := filepath.Rel(w.m.dir, pos.Filename)
				t := w.t
				t.Errorf("config.%s.%s (Config.%s, YAML %s) at %s:%d has no doc comment: say what the key does, its unit and its default's meaning",
					typeName, name, gp, yp, filepath.ToSlash(rel), pos.Line)
			}
			w.follow(gp, yp, f.Type)
		}
	}
}

// follow walks into the struct types a field's type refers to.
func (w *fieldWalker) follow(goPath, yamlPath string, expr ast.Expr) {
	switch x := expr.(type) {
	case *ast.StarExpr:
		w.follow(goPath, yamlPath, x.X)
	case *ast.ArrayType:
		w.follow(goPath+"[]", yamlPath+"[]", x.Elt)
	case *ast.MapType:
		w.follow(goPath+"[]", yamlPath+".*", x.Value)
	case *ast.StructType:
		w.structType("(inline struct)", goPath, yamlPath, x)
	case *ast.Ident:
		ts, ok := w.types[x.Name]
		if !ok || w.done[x.Name] {
			return
		}
		w.done[x.Name] = true
		w.structType(x.Name, goPath, yamlPath, ts.Type)
	}
}

func embeddedName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return embeddedName(x.X)
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return x.Sel.Name
	}
	return fmt.Sprintf("%T", e)
}

// yamlKey is a field's YAML key from its tag: "" when untagged, "-" when
// the field is skipped.
func yamlKey(f *ast.Field) string {
	if f.Tag == nil {
		return ""
	}
	tag, err := strconv.Unquote(f.Tag.Value)
	if err != nil {
		return ""
	}
	for _, part := range strings.Fields(tag) {
		if v, ok := strings.CutPrefix(part, `yaml:"`); ok {
			k, _, _ := strings.Cut(strings.TrimSuffix(v, `"`), ",")
			return k
		}
	}
	return ""
}

// cmpKey is the key the YAML decoder uses: the tag's, or the lower-cased
// field name.
func cmpKey(key, name string) string {
	if key != "" {
		return key
	}
	return strings.ToLower(name)
}

func join(a, b, sep string) string {
	if a == "" {
		return b
	}
	return a + sep + b
}

// outsideCitations are strings that cite files outside the repository: the
// Graph digest and the decision list the project was specified from, and the
// shared folder they live in. Built by concatenation so that this file does
// not match itself.
var outsideCitations = []string{
	"graph-calls" + ".md",
	"DECISIONS" + ".md",
	"../" + "shared",
	"/work/" + "shared",
}

// TestNoCitationsOutsideTheRepository keeps every Go file citing what a
// reader of the repository can open: the Graph reference on
// learn.microsoft.com, an RFC, or the project's own docs/ (docs/decisions.md
// for Switchboard's choices, docs/graph-deviations.md for where it differs
// from Graph). A path outside the repository means nothing to someone with
// only a clone. Comments, strings and test messages all count; so do
// testdata and nested modules, which are part of the repository too.
func TestNoCitationsOutsideTheRepository(t *testing.T) {
	m := findModule(t)
	files := 0
	err := filepath.WalkDir(m.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != m.dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".go") {
			return nil
		}
		files++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(m.dir, path)
		for i, line := range strings.Split(string(data), "\n") {
			for _, s := range outsideCitations {
				if strings.Contains(line, s) {
					t.Errorf("%s:%d cites %q, a path outside the repository: cite the Graph reference page "+
						"(https://learn.microsoft.com/graph/...) or a docs/ anchor (docs/decisions.md#...) instead:\n\t%s",
						filepath.ToSlash(rel), i+1, s, strings.TrimSpace(line))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("only %d Go files under %s; the walk is broken", files, m.dir)
	}
}
