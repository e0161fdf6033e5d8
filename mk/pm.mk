# Process managers: PM2, forever, nodemon (pinned in tools/, see docs/PROCESS-MANAGERS.md).
# PM2 and forever use their usual homes (~/.pm2, ~/.forever) unless PM2_HOME /
# FOREVER_ROOT are set. The *-down targets stop only lbserver's own apps.
PM2      := tools/node_modules/.bin/pm2
FOREVER  := tools/node_modules/.bin/forever
NODEMON  := tools/node_modules/.bin/nodemon
ECOSYSTEM := deploy/pm2/ecosystem.config.js

nodemon: export PORT := $(PORT)
nodemon: export MODE := $(MODE)
forever-down: export FOREVER_STOP_TIMEOUT := $(FOREVER_STOP_TIMEOUT)

.PHONY: pm-tools pm2-a pm2-b pm2-status pm2-down forever-a forever-b forever-status forever-down nodemon

pm-tools:
	@bash scripts/deps.d/20-npm.sh

## pm2-a: topology A under PM2 (lbserver-fork 8080, lbserver-cluster 8081), watching bin/lbserver
pm2-a: build pm-tools
	$(PM2) start $(ECOSYSTEM) --only lbserver-fork,lbserver-cluster

## pm2-b: topology B under PM2 (lbserver-fork 8080, lbserver-b 8082-8085)
pm2-b: build pm-tools
	$(PM2) start $(ECOSYSTEM) --only lbserver-fork,lbserver-b

## pm2-status: pm2 ls and the process tree under the PM2 daemon
pm2-status: pm-tools
	$(PM2) ls
	@ps -ef --forest | grep -E '[P]M2 v|[b]in/lbserver' || true

## pm2-down: delete every app of the ecosystem file (other PM2 apps are left alone)
pm2-down: pm-tools
	$(PM2) delete $(ECOSYSTEM)

## forever-a / forever-b: the topologies under forever (deploy/forever/*.json); lbserver's
## forever processes that already run are stopped first, so switching topologies (or running a
## target twice) never starts a second process on a port that is taken
forever-a: build pm-tools
	@$(MAKE) --no-print-directory forever-down
	$(FOREVER) start deploy/forever/topology-a.json

forever-b: build pm-tools
	@$(MAKE) --no-print-directory forever-down
	$(FOREVER) start deploy/forever/topology-b.json

## forever-status: forever list and the process tree under the forever monitors
forever-status: pm-tools
	$(FOREVER) list
	@ps -ef --forest | grep -E '[f]orever/bin/monitor|[b]in/lbserver' || true

## forever-down: stop lbserver's forever processes (by uid; others are left alone); each stop
## is bounded (FOREVER_STOP_TIMEOUT seconds) so that it can never hang
FOREVER_UIDS := lbserver-8080 lbserver-8081 lbserver-8082 lbserver-8083 lbserver-8084 lbserver-8085
forever-down: pm-tools
	@for uid in $(FOREVER_UIDS); do \
	  timeout "$$FOREVER_STOP_TIMEOUT" $(FOREVER) stop $$uid >/dev/null 2>&1; rc=$$?; \
	  if [ $$rc = 0 ]; then echo "forever: stopped $$uid"; \
	  elif [ $$rc = 124 ]; then echo "forever: 'forever stop $$uid' did not return within $${FOREVER_STOP_TIMEOUT}s; see: forever list" >&2; exit 1; fi; \
	done

## nodemon: rebuild and restart on every change under cmd/ internal/ (PORT=8080 MODE=FORK by default)
nodemon: pm-tools
	$(NODEMON) -- --port "$$PORT" --mode "$$MODE"
