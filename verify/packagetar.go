package verify

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Bounds on a package archive.
const (
	// MaxPackageArchiveSize bounds the bytes of a package archive once
	// decompressed (headers, padding and files).
	MaxPackageArchiveSize = 8 << 30
	// maxArchiveEntries bounds the entries of an archive (the index is in memory).
	maxArchiveEntries = 1 << 20
)

// OpenPackage opens an assessor package for [Package]: a directory (an
// os.DirFS of it), or a tar archive of one, plain (.tar) or gzip-compressed
// (.tar.gz, .tgz). An archive holds regular files and directories only: an
// entry with an absolute name, a ".." element, a backslash, a duplicate name,
// or of another type (symlink, hard link, device, sparse file) is refused.
// Names may start with "./", and an archive whose entries all sit in one
// top-level directory holding manifest.json (`tar czf pkg.tgz pkg/`) is
// read from inside it.
//
// An archive is never loaded into memory: a plain archive is read in place
// through an index of its entries; a compressed one is first decompressed
// to a temporary file (at most MaxPackageArchiveSize bytes; removed at once
// where the system allows, else by close). The returned close function
// releases the archive; call it when done with the fs.FS.
func OpenPackage(name string) (fs.FS, func() error, error) {
	st, err := os.Stat(name)
	if err != nil {
		return nil, nil, err
	}
	if st.IsDir() {
		return os.DirFS(name), func() error { return nil }, nil
	}
	lower := strings.ToLower(name)
	compressed := strings.HasSuffix(lower, ".tar.gz") || strings.HasSuffix(lower, ".tgz")
	if !st.Mode().IsRegular() || !compressed && !strings.HasSuffix(lower, ".tar") {
		return nil, nil, fmt.Errorf("open package %s: not a directory, .tar, .tar.gz or .tgz file", name)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	if !compressed {
		fsys, err := indexTar(f, st.Size())
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("open package %s: %w", name, err)
		}
		return fsys, f.Close, nil
	}
	defer f.Close()
	tmp, closeTmp, err := decompress(f)
	if err != nil {
		return nil, nil, fmt.Errorf("open package %s: %w", name, err)
	}
	size, err := tmp.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		closeTmp()
		return nil, nil, fmt.Errorf("open package %s: %w", name, err)
	}
	fsys, err := indexTar(tmp, size)
	if err != nil {
		closeTmp()
		return nil, nil, fmt.Errorf("open package %s: %w", name, err)
	}
	return fsys, closeTmp, nil
}

// decompress gunzips r into a temporary file, unlinked at once if the
// system allows it, and returns it with the function that closes and
// removes it.
func decompress(r io.Reader) (*os.File, func() error, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("gzip: %w", err)
	}
	tmp, err := os.CreateTemp("", "aigw-package-*.tar")
	if err != nil {
		return nil, nil, err
	}
	removed := os.Remove(tmp.Name()) == nil // POSIX: the open file lives on, unnamed
	closeTmp := func() error {
		err := tmp.Close()
		if !removed {
			if rerr := os.Remove(tmp.Name()); err == nil {
				err = rerr
			}
		}
		return err
	}
	n, err := io.Copy(tmp, io.LimitReader(zr, MaxPackageArchiveSize+1))
	if err == nil && n > MaxPackageArchiveSize {
		err = fmt.Errorf("archive larger than %d bytes once decompressed", int64(MaxPackageArchiveSize))
	}
	if err == nil {
		err = zr.Close()
	}
	if err != nil {
		closeTmp()
		return nil, nil, fmt.Errorf("gunzip: %w", err)
	}
	return tmp, closeTmp, nil
}

// tarFS is a read-only fs.FS over a tar archive in a file, through an
// index of its regular files. It is safe for concurrent use (files are
// read with ReadAt).
type tarFS struct {
	r     io.ReaderAt
	files map[string]*tarEntry
	dirs  map[string][]fs.DirEntry // sorted by name; "." is the root
}

type tarEntry struct {
	name      string // base name
	off, size int64
	mtime     time.Time
}

var (
	_ fs.ReadDirFS = (*tarFS)(nil)
	_ fs.StatFS    = (*tarFS)(nil)
)

// indexTar indexes the tar archive in f, of size bytes.
func indexTar(f *os.File, size int64) (*tarFS, error) {
	files := map[string]*tarEntry{}
	dirs := map[string]bool{}
	tr := tar.NewReader(f)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if n >= maxArchiveEntries {
			return nil, fmt.Errorf("archive has more than %d entries", maxArchiveEntries)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name := hdr.Name
		for strings.HasPrefix(name, "./") {
			name = name[2:]
		}
		if hdr.Typeflag == tar.TypeDir {
			name = strings.TrimSuffix(name, "/")
			if name == "" || name == "." {
				continue
			}
		}
		if !validPackagePath(name) {
			return nil, fmt.Errorf("archive entry %q: not a clean relative path", hdr.Name)
		}
		if files[name] != nil || dirs[name] {
			return nil, fmt.Errorf("archive entry %q: duplicate name", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			dirs[name] = true
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("archive entry %q: type %q is not a regular file or a directory", hdr.Name, hdr.Typeflag)
		}
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return nil, fmt.Errorf("archive entry %q: sparse files are not allowed", hdr.Name)
			}
		}
		// The tar reader has consumed exactly the headers: the file's data
		// starts here. (Were it not so, step 2's hashes would fail, not pass.)
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if hdr.Size < 0 || off > size || hdr.Size > size-off {
			return nil, fmt.Errorf("archive entry %q: size %d beyond the archive", hdr.Name, hdr.Size)
		}
		files[name] = &tarEntry{name: path.Base(name), off: off, size: hdr.Size, mtime: hdr.ModTime}
	}
	files, dirs = stripTopDir(files, dirs)
	t := &tarFS{r: f, files: files, dirs: map[string][]fs.DirEntry{".": nil}}
	for d := range dirs {
		if err := t.addDir(d); err != nil {
			return nil, err
		}
	}
	for name, e := range files {
		parent := path.Dir(name)
		if err := t.addDir(parent); err != nil {
			return nil, err
		}
		t.dirs[parent] = append(t.dirs[parent], fs.FileInfoToDirEntry(e.info()))
	}
	for _, es := range t.dirs {
		slices.SortFunc(es, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	}
	return t, nil
}

// stripTopDir re-roots an archive whose entries all sit under one directory
// holding manifest.json and that has none at its root.
func stripTopDir(files map[string]*tarEntry, dirs map[string]bool) (map[string]*tarEntry, map[string]bool) {
	if files[ManifestFile] != nil {
		return files, dirs
	}
	top := ""
	for name := range files {
		d, _, ok := strings.Cut(name, "/")
		if !ok || top != "" && d != top {
			return files, dirs
		}
		top = d
	}
	for name := range dirs {
		if d, _, _ := strings.Cut(name, "/"); d != top {
			return files, dirs
		}
	}
	if top == "" || files[top+"/"+ManifestFile] == nil {
		return files, dirs
	}
	nf := make(map[string]*tarEntry, len(files))
	for name, e := range files {
		nf[strings.TrimPrefix(name, top+"/")] = e
	}
	nd := map[string]bool{}
	for name := range dirs {
		if name != top {
			nd[strings.TrimPrefix(name, top+"/")] = true
		}
	}
	return nf, nd
}

// addDir records directory d and its parents, refusing a name that is
// also a file.
func (t *tarFS) addDir(d string) error {
	if d == "." {
		return nil
	}
	if t.files[d] != nil {
		return fmt.Errorf("archive entry %q is both a file and a directory", d)
	}
	if _, ok := t.dirs[d]; ok {
		return nil
	}
	t.dirs[d] = nil
	parent := path.Dir(d)
	if err := t.addDir(parent); err != nil {
		return err
	}
	t.dirs[parent] = append(t.dirs[parent], fs.FileInfoToDirEntry(dirInfo(path.Base(d))))
	return nil
}

func (t *tarFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if e := t.files[name]; e != nil {
		return &tarFile{SectionReader: io.NewSectionReader(t.r, e.off, e.size), e: e}, nil
	}
	if es, ok := t.dirs[name]; ok {
		return &tarDir{info: dirInfo(path.Base(name)), entries: es}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (t *tarFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	es, ok := t.dirs[name]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(es), nil
}

func (t *tarFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	if e := t.files[name]; e != nil {
		return e.info(), nil
	}
	if _, ok := t.dirs[name]; ok {
		return dirInfo(path.Base(name)), nil
	}
	return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
}

// tarInfo is the fs.FileInfo of an archive entry.
type tarInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (e *tarEntry) info() *tarInfo {
	return &tarInfo{name: e.name, size: e.size, mode: 0o444, mtime: e.mtime}
}

func dirInfo(name string) *tarInfo { return &tarInfo{name: name, mode: fs.ModeDir | 0o555} }

func (i *tarInfo) Name() string       { return i.name }
func (i *tarInfo) Size() int64        { return i.size }
func (i *tarInfo) Mode() fs.FileMode  { return i.mode }
func (i *tarInfo) ModTime() time.Time { return i.mtime }
func (i *tarInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *tarInfo) Sys() any           { return nil }

type tarFile struct {
	*io.SectionReader
	e *tarEntry
}

func (f *tarFile) Stat() (fs.FileInfo, error) { return f.e.info(), nil }
func (f *tarFile) Close() error               { return nil }

type tarDir struct {
	info    *tarInfo
	entries []fs.DirEntry
	off     int
}

func (d *tarDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *tarDir) Close() error               { return nil }
func (d *tarDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

func (d *tarDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.off += len(rest)
	return slices.Clone(rest), nil
}

// WritePackageTar writes the package in fsys as a tar archive to w,
// gzip-compressed if gz. The archive is deterministic: the regular files of
// fsys (anything else is an error) in sorted path order, with no directory
// entries, each of mode 0644, owner 0:0 without names, and modification
// time mtime (UTC, whole seconds); the gzip header has no name or time.
// The same files and mtime give the same bytes.
func WritePackageTar(w io.Writer, fsys fs.FS, mtime time.Time, gz bool) error {
	var paths []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file (%s)", p, d.Type())
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("write package archive: %w", err)
	}
	slices.Sort(paths)
	out := w
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(w)
		out = zw
	}
	tw := tar.NewWriter(out)
	mtime = mtime.UTC().Truncate(time.Second)
	for _, p := range paths {
		if err := writeTarFile(tw, fsys, p, mtime); err != nil {
			return fmt.Errorf("write package archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write package archive: %w", err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return fmt.Errorf("write package archive: %w", err)
		}
	}
	return nil
}

func writeTarFile(tw *tar.Writer, fsys fs.FS, p string, mtime time.Time) error {
	f, err := fsys.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%s)", p, st.Mode().Type())
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: p, Size: st.Size(), Mode: 0o644, ModTime: mtime}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if n, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	} else if n != st.Size() {
		return fmt.Errorf("%s: %d bytes read, %d stated (the file changed)", p, n, st.Size())
	}
	return nil
}
