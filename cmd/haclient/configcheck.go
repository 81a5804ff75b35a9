package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/smbservice"
)

// smbCheckTimeout bounds testparm on one smb.conf.
const smbCheckTimeout = 30 * time.Second

// configCheck checks the configuration at file the way tandemd reads it,
// then the smb.conf of every smb resource with testparm and the rules of a
// failover pair. It needs no daemon. On success it prints "config OK: FILE"
// and the warnings on stdout; otherwise every problem on its own line on
// stderr, and returns errReported.
func (a *app) configCheck(ctx context.Context, file string) error {
	cfg, warnings, err := config.Check(file)
	var lines, warns []string
	for _, w := range warnings {
		warns = append(warns, w.String())
	}
	var list config.ErrorList
	switch {
	case errors.As(err, &list):
		for _, e := range list {
			lines = append(lines, e.Error())
		}
	case err != nil:
		lines = append(lines, err.Error())
	}
	if cfg != nil {
		for i, r := range cfg.Resources {
			if r.Type != config.KindSMB || r.SMB == nil {
				continue
			}
			w, errs := a.checkSamba(ctx, cfg, i)
			warns = append(warns, w...)
			lines = append(lines, errs...)
		}
	}
	if len(lines) > 0 {
		for _, l := range lines {
			fmt.Fprintln(a.stderr, l)
		}
		for _, w := range warns {
			fmt.Fprintln(a.stderr, w)
		}
		noun := "errors"
		if len(lines) == 1 {
			noun = "error"
		}
		fmt.Fprintf(a.stderr, "haclient: config check: %s: %d %s\n", file, len(lines), noun)
		return errReported
	}
	fmt.Fprintf(a.stdout, "config OK: %s\n", file)
	for _, w := range warns {
		fmt.Fprintln(a.stdout, w)
	}
	return nil
}

// checkSamba checks the smb.conf of cfg.Resources[i] with what the
// configuration tells of the pair: the address clients reach smbd on, and
// the mount point of the first filesystem started before it, where the
// shared state directories belong. It returns warnings and errors as lines.
func (a *app) checkSamba(ctx context.Context, cfg *config.Config, i int) (warnings, errs []string) {
	r := cfg.Resources[i]
	c := &smbservice.Checker{Address: r.SMB.Address}
	for _, prev := range cfg.Resources[:i] {
		if prev.Type == config.KindFilesystem && prev.Filesystem != nil {
			c.SharedDir = prev.Filesystem.Mountpoint
			break
		}
	}
	ctx, cancel := context.WithTimeout(ctx, smbCheckTimeout)
	defer cancel()
	where := fmt.Sprintf("smb.conf: resource %q: ", r.Name)
	ws, err := a.checkSMB(ctx, c, r.SMB.Config)
	for _, w := range ws {
		warnings = append(warnings, "smb.conf: warning: resource "+fmt.Sprintf("%q: ", r.Name)+w)
	}
	var ce *smbservice.ConfigError
	switch {
	case errors.As(err, &ce):
		for _, p := range ce.Problems {
			pos := ce.Path
			if p.Line > 0 {
				pos = fmt.Sprintf("%s:%d", ce.Path, p.Line)
			}
			errs = append(errs, where+pos+": "+p.Text)
		}
	case err != nil:
		errs = append(errs, where+err.Error())
	}
	return warnings, errs
}
